import { createServer } from "node:net";
import { join } from "node:path";
import { writeTinyModel } from "@cortex/harness-llamacpp";
import { WORKER_ENTRY } from "@cortex/harness-llamacpp/worker";
import { API_KEY, startStack } from "./stack.js";
import {
  type BenchResult,
  now,
  print,
  round,
  spawnNode,
  stopChild,
  table,
  waitFor,
  writeReport,
} from "./support.js";

export interface InferenceOptions {
  readonly rounds: number;
  readonly maxTokens: number;
}
export const INFERENCE_FULL: InferenceOptions = { rounds: 16, maxTokens: 256 };
export const INFERENCE_SMOKE: InferenceOptions = { rounds: 1, maxTokens: 4 };

const PROMPTS = [
  "Write a short poem about the sea.",
  "Explain what a GPU does.",
  "List three colours.",
  "Hello, how are you today?",
];

const CONTEXT = 512;

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

/**
 * Tokens/s of the tiny model through cortex → neuron → built-in harness versus a worker with the
 * same flags started directly, alternating request by request with the same prompts and greedy
 * decoding (the tiny model runs to max_tokens).
 */
export const runInference = async (options: InferenceOptions): Promise<BenchResult> => {
  const stack = await startStack([], {
    setup: (modelsDir) => writeTinyModel(join(modelsDir, "tiny.gguf"), { seed: 1 }),
    catalogue: [
      {
        id: "tiny",
        harness: "llamacpp",
        source: "tiny.gguf",
        runs_on: "cpu",
        vram_mb: 0,
        max_concurrency: 1,
        context_length: CONTEXT,
        idle_ttl_s: 0,
        args: { threads: 1 },
      },
    ],
  });
  const port = await freePort();
  const worker = spawnNode([
    WORKER_ENTRY,
    "--model",
    join(stack.dir, "models", "tiny.gguf"),
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
    "--alias",
    "tiny",
    "--parallel",
    "1",
    "--ctx-size",
    String(CONTEXT),
    "--gpu",
    "off",
    "--threads",
    "1",
  ]);
  try {
    const direct = `http://127.0.0.1:${port}`;
    await waitFor(
      "the direct worker ready",
      async () => {
        try {
          return (await fetch(`${direct}/health`)).ok;
        } catch {
          return false;
        }
      },
      60_000,
    );
    const targets = {
      direct: { url: `${direct}/v1/chat/completions`, headers: {} as Record<string, string> },
      cortex: {
        url: `${stack.cortex.url}/v1/chat/completions`,
        headers: { authorization: `Bearer ${API_KEY}` } as Record<string, string>,
      },
    };
    const ask = async (name: keyof typeof targets, prompt: string) => {
      const start = now();
      const res = await fetch(targets[name].url, {
        method: "POST",
        headers: { ...targets[name].headers, "content-type": "application/json" },
        body: JSON.stringify({
          model: "tiny",
          messages: [{ role: "user", content: prompt }],
          max_tokens: options.maxTokens,
          temperature: 0,
        }),
      });
      const answer = (await res.json()) as { usage?: { completion_tokens?: number } };
      const ms = now() - start;
      if (res.status !== 200) throw new Error(`${name}: ${res.status} ${JSON.stringify(answer)}`);
      return { tokens: answer.usage?.completion_tokens ?? 0, ms };
    };
    // Warm-up: the first cortex request cold-loads the model.
    await ask("cortex", "warm up");
    await ask("direct", "warm up");
    const totals = { direct: { tokens: 0, ms: 0 }, cortex: { tokens: 0, ms: 0 } };
    for (let round_ = 0; round_ < options.rounds; round_ += 1) {
      const prompt = PROMPTS[round_ % PROMPTS.length] ?? "Hello";
      // Alternate which goes first, so neither always runs on a warmer cache.
      const order =
        round_ % 2 === 0 ? (["direct", "cortex"] as const) : (["cortex", "direct"] as const);
      for (const name of order) {
        const r = await ask(name, prompt);
        totals[name].tokens += r.tokens;
        totals[name].ms += r.ms;
      }
    }
    const tps = (t: { tokens: number; ms: number }) => round((t.tokens / t.ms) * 1000, 1);
    const ratio = round(tps(totals.cortex) / tps(totals.direct), 4);
    const report = {
      benchmark: "inference",
      date: new Date().toISOString(),
      options,
      direct: { ...totals.direct, tokens_per_s: tps(totals.direct) },
      cortex: { ...totals.cortex, tokens_per_s: tps(totals.cortex) },
      ratio,
    };
    writeReport("inference", report);
    const t = table(
      ["target", "requests", "tokens", "seconds", "tokens/s", "vs direct"],
      (["direct", "cortex"] as const).map((n) => [
        n,
        options.rounds,
        totals[n].tokens,
        round(totals[n].ms / 1000, 2),
        tps(totals[n]),
        round(tps(totals[n]) / tps(totals.direct), 4),
      ]),
    );
    print("Real inference (tiny model, 1 thread, greedy)", t.text);
    return {
      name: "inference",
      title: "Real inference",
      markdown: `The tiny GGUF model on the built-in llama.cpp harness (\`threads: 1\`), ${options.rounds} non-streaming requests of ${options.maxTokens} tokens each way, alternating; tokens/s over the whole request:\n\n${t.markdown}`,
      budgets: [
        {
          budget: "tokens/s through cortex ≥ 98 % of direct",
          measured: `${round(ratio * 100, 1)} % (${tps(totals.cortex)} vs ${tps(totals.direct)} tokens/s)`,
          pass: ratio >= 0.98,
        },
      ],
    };
  } finally {
    await stopChild(worker.child);
    await stack.stop();
  }
};
