import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TinyModelShape, writeTinyModel } from "@cortex/harness-llamacpp";
import { WORKER_ENTRY } from "@cortex/harness-llamacpp/worker";
import { freePort, waitFor } from "@cortex/testkit";
import { type ChatMessage, streamTurn, systemPrompt, userMessage } from "./prefix-cache-talk.js";
import {
  type BenchResult,
  print,
  round,
  type Spread,
  spawnNode,
  spread,
  stopChild,
  table,
  writeReport,
} from "./support.js";

export interface PrefixCacheOptions {
  /** Conversations held at once; the worker gets one slot per conversation. */
  readonly conversations: number;
  readonly turns: number;
  /** Length of each conversation's system prompt in characters (~0.75 tokens each here). */
  readonly systemChars: number;
  readonly maxTokens: number;
  readonly contextSize: number;
  /** The generated model's shape (see the harness's tiny-model writer); {} is the tiny one. */
  readonly shape: Partial<TinyModelShape>;
}

/** About 26 million parameters (~100 MB of F32): a 1,000-token prompt takes most of a second. */
const BENCH_SHAPE: Partial<TinyModelShape> = {
  embeddingLength: 512,
  feedForwardLength: 1536,
  blockCount: 8,
  headCount: 8,
  headCountKv: 4,
};

export const PREFIX_CACHE_FULL: PrefixCacheOptions = {
  conversations: 10,
  turns: 6,
  systemChars: 1350,
  maxTokens: 24,
  contextSize: 2048,
  shape: BENCH_SHAPE,
};
export const PREFIX_CACHE_SMOKE: PrefixCacheOptions = {
  conversations: 2,
  turns: 2,
  systemChars: 200,
  maxTokens: 4,
  contextSize: 1024,
  shape: {},
};

type Mode = "reuse" | "no reuse";
const MODES: readonly Mode[] = ["reuse", "no reuse"];

interface Sample {
  readonly mode: Mode;
  readonly conversation: number;
  readonly turn: number;
  readonly ttftMs: number;
  readonly promptTokens: number;
  readonly cachedTokens: number;
}

const startWorker = async (
  model: string,
  options: PrefixCacheOptions,
  extra: readonly string[],
): Promise<{ child: ChildProcess; url: string }> => {
  const port = await freePort();
  const { child } = spawnNode([
    WORKER_ENTRY,
    ...["--model", model, "--port", String(port), "--gpu", "off", "--alias", "bench"],
    ...["--parallel", String(options.conversations), "--ctx-size", String(options.contextSize)],
    ...extra,
  ]);
  const base = `http://127.0.0.1:${port}`;
  await waitFor(
    `the worker on ${base}`,
    async () => (await fetch(`${base}/health`).catch(() => undefined))?.status === 200,
    120_000,
  );
  return { child, url: `${base}/v1/chat/completions` };
};

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

const share = (samples: readonly Sample[]): number =>
  round(
    sum(samples.map((s) => s.cachedTokens)) / Math.max(1, sum(samples.map((s) => s.promptTokens))),
    3,
  );

/**
 * The built-in harness reusing what its slots evaluated, against the same worker started with
 * `--no-prefix-cache`: `conversations` conversations of `turns` turns each, every one with its
 * own long system prompt, sent one request at a time, round robin over the conversations (so
 * a conversation's next turn finds its slot after every other conversation has used one), the
 * two workers alternating which goes first. Time to first token of first and follow-up turns,
 * and the share of prompt tokens the answers report as cached.
 */
export const runPrefixCache = async (options: PrefixCacheOptions): Promise<BenchResult> => {
  const dir = await mkdtemp(join(tmpdir(), "cortex-bench-prefix-"));
  const workers: ChildProcess[] = [];
  try {
    // Generated for each run, never kept: same seed and shape, same bytes.
    const model = join(dir, "model.gguf");
    await writeTinyModel(model, { seed: 1, shape: options.shape });
    const modelBytes = (await stat(model)).size;
    const urls = {} as Record<Mode, string>;
    for (const mode of MODES) {
      const worker = await startWorker(
        model,
        options,
        mode === "reuse" ? [] : ["--no-prefix-cache"],
      );
      workers.push(worker.child);
      urls[mode] = worker.url;
      // Before the clock: the first request pages the model in and warms llama.cpp up.
      await streamTurn(worker.url, [{ role: "user", content: "warm up" }], 2);
    }

    const histories = Object.fromEntries(
      MODES.map((mode) => [
        mode,
        Array.from({ length: options.conversations }, (_, index): ChatMessage[] => [
          { role: "system", content: systemPrompt(index, options.systemChars) },
        ]),
      ]),
    ) as Record<Mode, ChatMessage[][]>;
    const samples: Sample[] = [];
    let step = 0;
    for (let turn = 0; turn < options.turns; turn += 1) {
      for (let conversation = 0; conversation < options.conversations; conversation += 1) {
        const order = step % 2 === 0 ? MODES : [...MODES].reverse();
        step += 1;
        for (const mode of order) {
          const history = histories[mode][conversation] ?? [];
          history.push({ role: "user", content: userMessage(conversation, turn) });
          const result = await streamTurn(urls[mode], history, options.maxTokens);
          history.push({ role: "assistant", content: result.text });
          samples.push({ mode, conversation, turn, ...result });
        }
      }
    }

    const stats = MODES.map((mode) => {
      const mine = samples.filter((s) => s.mode === mode);
      const first = mine.filter((s) => s.turn === 0);
      const followUps = mine.filter((s) => s.turn > 0);
      return {
        mode,
        first_turn_prompt_tokens_mean: round(
          sum(first.map((s) => s.promptTokens)) / first.length,
          1,
        ),
        first_turn_ttft_ms: spread(first.map((s) => s.ttftMs)),
        follow_up_ttft_ms: spread(followUps.map((s) => s.ttftMs)),
        prompt_tokens: sum(mine.map((s) => s.promptTokens)),
        cached_tokens: sum(mine.map((s) => s.cachedTokens)),
        cached_share: share(mine),
        follow_up_cached_share: share(followUps),
        follow_ups_without_cache: followUps.filter((s) => s.cachedTokens === 0).length,
      };
    });
    const [reuse, off] = stats;
    if (!reuse || !off) throw new Error("missing a mode");
    const speedup = round(off.follow_up_ttft_ms.p50 / reuse.follow_up_ttft_ms.p50, 2);
    const followUpCount = options.conversations * (options.turns - 1);
    const fresh = samples
      .filter((s) => s.mode === "reuse" && s.turn > 0)
      .map((s) => s.promptTokens - s.cachedTokens);
    const evaluated = fresh.length > 0 ? `${Math.min(...fresh)}–${Math.max(...fresh)}` : "no";
    writeReport("prefix-cache", {
      benchmark: "prefix-cache",
      date: new Date().toISOString(),
      options,
      model: { bytes: modelBytes, parameters_approx: Math.round(modelBytes / 4) },
      modes: stats,
      follow_up_ttft_p50_speedup: speedup,
      samples,
    });

    const ms = (s: Spread, key: "p50" | "p99") => round(s[key], 1);
    const t = table(
      [
        "prefix reuse",
        "first turns p50 ms",
        "follow-ups p50 ms",
        "follow-ups p99 ms",
        "prompt tokens from cache (all turns)",
        "(follow-ups)",
      ],
      stats.map((s) => [
        s.mode === "reuse" ? "on" : "off (`--no-prefix-cache`)",
        ms(s.first_turn_ttft_ms, "p50"),
        ms(s.follow_up_ttft_ms, "p50"),
        ms(s.follow_up_ttft_ms, "p99"),
        `${round(s.cached_share * 100, 1)} %`,
        `${round(s.follow_up_cached_share * 100, 1)} %`,
      ]),
    );
    print("Prefix reuse in the built-in harness (time to first token)", t.text);
    const size = `${round(modelBytes / 4 / 1e6, 1)} M parameters, ${round(modelBytes / 2 ** 20, 1)} MiB F32`;
    return {
      name: "prefix-cache",
      title: "Prefix reuse in the built-in harness",
      markdown: [
        `One built-in harness worker (\`--parallel ${options.conversations}\`, one slot per conversation, default threads) on a generated model (the tiny-model writer at ${options.shape.embeddingLength ?? 64} wide × ${options.shape.blockCount ?? 2} layers: ${size}), against the same worker with \`--no-prefix-cache\`. ${options.conversations} conversations × ${options.turns} turns, each with its own system prompt (first turns: ${reuse.first_turn_prompt_tokens_mean} prompt tokens on average), greedy answers of ${options.maxTokens} tokens sent back as the assistant's turn; one streamed request at a time, round robin over the conversations, the two workers alternating which goes first. Time to first token from sending the request (${followUpCount} follow-up turns per row); the share of prompt tokens is \`usage.prompt_tokens_details.cached_tokens\` over \`prompt_tokens\`. One replica, called directly: cortex's conversation affinity, which keeps a conversation on the replica holding it, is not part of this measurement. The model's answers are noise that does not tokenize back to the tokens generated, so a follow-up evaluates its previous answer again as well as its new message (${evaluated} tokens evaluated per follow-up in this run); a real model's answers mostly round-trip.`,
        "",
        t.markdown,
        "",
        `Follow-up turns' first token p50: ${speedup}× faster with reuse; ${reuse.follow_ups_without_cache} of ${followUpCount} follow-ups with reuse reported no cached tokens.`,
      ].join("\n"),
      budgets: [
        {
          budget:
            "built-in harness prefix reuse: follow-up turns' first token p50 below the same worker without reuse",
          measured: `${ms(reuse.follow_up_ttft_ms, "p50")} vs ${ms(off.follow_up_ttft_ms, "p50")} ms (${speedup}×; ${round(reuse.follow_up_cached_share * 100, 1)} % of follow-up prompt tokens from cache)`,
          pass: reuse.follow_up_ttft_ms.p50 < off.follow_up_ttft_ms.p50,
        },
      ],
    };
  } finally {
    for (const child of workers) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  }
};
