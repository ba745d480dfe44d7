import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { deepBody, plainBody } from "./attack-bodies.js";
import { ROOT } from "./support.js";

// What reading one attack body costs, in a fresh process per measurement (run with --expose-gc):
// `node --expose-gc body-parse-cli.js <way> <deep|plain> <levels|bytes>` prints one JSON line.
// Ways: `json-parse` is what cortex did before issue 13 (JSON.parse of the body as a string,
// the tree kept until the request ended); `scan` is what it does now (the built http-kit's
// inferenceFields: a scan that stops past 64 levels); `scan-unbounded` scans the whole body
// with no depth limit, to show what validating all of it costs without building a tree.

interface HttpKit {
  inferenceFields(body: Buffer): unknown;
  scanJsonObject(buf: Uint8Array, wanted: ReadonlySet<string>, maxDepth: number): unknown;
}

const [way = "scan", kind = "deep", sizeText = "1000"] = process.argv.slice(2);
const size = Number(sizeText);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

/** VmRSS and VmHWM (the peak RSS so far) in bytes. */
const vm = (): { rss: number; hwm: number } => {
  const status = readFileSync("/proc/self/status", "utf8");
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 };
};

// The built package, as the benchmarks use the built apps: it is not a dependency of this one.
const kit = (await import(
  pathToFileURL(join(ROOT, "packages/http-kit/dist/index.js")).href
)) as HttpKit;
const body = kind === "deep" ? deepBody("busy", size) : plainBody("busy", size);
// Warm the code paths on a small body of the same kind, so the timing is of the work.
const small = kind === "deep" ? deepBody("busy", 32) : plainBody("busy", 1024);
for (let i = 0; i < 3; i += 1) {
  if (way === "json-parse") JSON.parse(small.toString("utf8"));
  else kit.inferenceFields(small);
}
gc();
gc();
const before = { ...process.memoryUsage(), ...vm() };
const t0 = performance.now();
let kept: unknown;
let outcome = "ok";
try {
  if (way === "json-parse") kept = JSON.parse(body.toString("utf8"));
  else if (way === "scan") kept = kit.inferenceFields(body);
  else kept = kit.scanJsonObject(body, new Set(["model", "stream"]), size + 2);
} catch (error) {
  outcome = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
const ms = performance.now() - t0;
// Measured while the result is still held, as a request held it until it ended.
const after = { ...process.memoryUsage(), ...vm() };
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({
    way,
    kind,
    body_bytes: body.length,
    ms: Math.round(ms * 10) / 10,
    outcome,
    heap_used_delta_mib: mib(after.heapUsed - before.heapUsed),
    rss_delta_mib: mib(after.rss - before.rss),
    rss_peak_delta_mib: mib(after.hwm - before.rss),
    kept: kept !== undefined,
  })}\n`,
);
