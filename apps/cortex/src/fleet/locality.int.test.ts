import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig, type HeldSources } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, startFakeNeuron } from "@cortex/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type Cortex, startCortex } from "../cortex.js";
import { silentLog } from "../log.js";

// Weights where they already are, end to end on loopback: cortex in-process against two fake
// neurons, each behind a small proxy that adds what its disk holds to its `/discovery` answer
// (the fake neuron has no disk). Node a has more room; only b holds the weights.

const TOKEN = "neuron-secret";
const KEY = "sk-client";

const CATALOGUE = {
  models: [
    { id: "on-disk", harness: "llamacpp", source: "weights/p.gguf", vram_mb: 6000 },
    { id: "from-hub", harness: "llamacpp", source: "hf:o/r/f.gguf", vram_mb: 6000 },
    { id: "nowhere", harness: "llamacpp", source: "weights/none.gguf", vram_mb: 6000 },
  ],
};

const held = (...paths: string[]): HeldSources => ({
  models_dir: "/srv/models",
  files: paths.map((path) => ({ path, size_bytes: 1 << 30 })),
  complete: true,
});

/** Forwards everything to `target`, adding `sources` to its `/discovery` answers. */
const discoveryProxy = async (target: string, sources: HeldSources): Promise<Server> => {
  const server = createServer((req, res) => {
    const upstream = request(
      `${target}${req.url ?? "/"}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        if (req.url !== "/discovery" || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", () => {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as object;
          res
            .writeHead(200, { "content-type": "application/json" })
            .end(JSON.stringify({ ...body, sources }));
        });
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
};

let dir: string;
let neurons: FakeNeuron[] = [];
let proxies: Server[] = [];
let cortex: Cortex | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-locality-"));
  await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
});

afterEach(async () => {
  await cortex?.stop(0);
  cortex = undefined;
  for (const proxy of proxies.splice(0)) {
    proxy.closeAllConnections();
    proxy.close();
  }
  await Promise.all(neurons.splice(0).map((neuron) => neuron.close()));
  await rm(dir, { recursive: true, force: true });
});

const start = async (): Promise<Cortex> => {
  const specs = [
    { name: "a", totalMb: 48_000, sources: held("other.gguf") },
    { name: "b", totalMb: 16_000, sources: held("weights/p.gguf", "hf/o/r/main/f.gguf") },
  ];
  neurons = await Promise.all(
    specs.map((spec) =>
      startFakeNeuron({
        name: spec.name,
        token: TOKEN,
        devices: [gpuDevice(0, spec.totalMb)],
        loadDelayMs: 20,
      }),
    ),
  );
  proxies = await Promise.all(
    specs.map((spec, i) => discoveryProxy((neurons[i] as FakeNeuron).url, spec.sources)),
  );
  const started = await startCortex(
    CortexConfig.parse({
      listen: "127.0.0.1:0",
      catalogue: dir,
      data_dir: ":memory:",
      poll_interval_ms: 100,
      poll_timeout_ms: 1000,
      api_keys: [KEY],
      admin_token: "admin",
      neurons: specs.map((spec, i) => ({
        name: spec.name,
        url: `http://127.0.0.1:${((proxies[i] as Server).address() as { port: number }).port}`,
        token: TOKEN,
      })),
    }),
    silentLog,
  );
  cortex = started;
  await expect
    .poll(() => started.store.snapshot.nodes.every((node) => node.sources !== undefined), {
      timeout: 5000,
    })
    .toBe(true);
  return started;
};

const chat = (c: Cortex, model: string) =>
  fetch(`${c.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });

const loadsOn = (name: string) =>
  (neurons.find((neuron) => neuron.name === name) as FakeNeuron).loads.map((load) => load.model_id);

describe("cold loads by where the weights are", () => {
  it("loads a path source on the only node that holds it, though another has more room", async () => {
    const c = await start();
    const res = await chat(c, "on-disk");
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cortex-node")).toBe("b");
    expect(loadsOn("a")).toEqual([]);
    expect(loadsOn("b")).toEqual(["on-disk"]);
  });

  it("loads a download source where it was downloaded before, rather than fetch it again", async () => {
    const c = await start();
    const res = await chat(c, "from-hub");
    expect(res.status).toBe(200);
    expect(loadsOn("b")).toEqual(["from-hub"]);
    expect(loadsOn("a")).toEqual([]);
  });

  it("refuses a path source that no node holds, naming the path and the nodes checked", async () => {
    const c = await start();
    const res = await chat(c, "nowhere");
    expect(res.status).toBe(503);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("no_feasible_node");
    expect(error.message).toBe(
      'no node can run model "nowhere": a: does not hold "weights/none.gguf" under its models_dir; b: does not hold "weights/none.gguf" under its models_dir',
    );
    expect([...loadsOn("a"), ...loadsOn("b")]).toEqual([]);
  });
});
