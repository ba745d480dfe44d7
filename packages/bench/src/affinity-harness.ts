import { appendFileSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

// The affinity benchmark's harness: testkit's fake harness reduced to what the benchmark uses
// (ready at once, each chat answer after the model file's `latency_ms`), plus a log of every
// answer's start and end. From that log the benchmark counts how many requests each replica
// really had in flight at once: the harness sees a request after cortex picked its replica and
// before cortex releases it, so its count never exceeds cortex's own, unlike a client's.
//
//   node affinity-harness.js --model <behaviour.json> --port <port> --log <file.jsonl>

const clock = (): number => performance.timeOrigin + performance.now();

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    log: { type: "string" },
  },
});
if (values.model === undefined || values.port === undefined || values.log === undefined) {
  process.stderr.write("usage: affinity-harness --model <file> --port <port> --log <file>\n");
  process.exit(2);
}
const log = values.log;
const behaviour = JSON.parse(readFileSync(values.model, "utf8")) as { latency_ms?: number };
const latencyMs = behaviour.latency_ms ?? 0;
const created = Math.floor(Date.now() / 1000);
let answers = 0;

const server = createServer((req, res) => {
  if (req.method === "GET" && (req.url === "/health" || req.url === "/v1/models")) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  const start = clock();
  let model = "";
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    try {
      model = String(
        (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { model?: string }).model,
      );
    } catch {
      // Answered all the same: the benchmark only reads who served it.
    }
    setTimeout(() => {
      answers += 1;
      const text = JSON.stringify({
        id: `affinity-${answers}`,
        object: "chat.completion",
        created,
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: "ok" },
            finish_reason: "stop",
            logprobs: null,
          },
        ],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      });
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      res.end(text);
      // One line per answer, epoch milliseconds (fractional): affinity-load's Span.
      appendFileSync(log, `${JSON.stringify({ start, end: clock() })}\n`);
    }, latencyMs);
  });
});
server.listen(Number(values.port), values.host);
