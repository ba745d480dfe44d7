import { once } from "node:events";
import { mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DiscoveryAnswer, NeuronConfig } from "@cortex/protocol";
import { fakeHarnessTemplate, waitFor } from "@cortex/testkit";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Neuron, startNeuron } from "../neuron.js";

// The whole neuron on loopback: `GET /discovery` reports the files under models_dir, and a
// download that completes during a load shows up without waiting for the slow rescan.

const TOKEN = "held-token";
/** The fake harness reads its model file as its behaviour: the download serves one. */
const BEHAVIOUR = JSON.stringify({ latency_ms: 0 });

let dir: string;
let models: string;
let neuron: Neuron | undefined;
let files: Server;
let filesUrl: string;

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-held-int-")));
  models = join(dir, "models");
  await mkdir(join(models, "hf", "o", "r", "main"), { recursive: true });
  await writeFile(join(models, "local.json"), BEHAVIOUR);
  await writeFile(join(models, "hf", "o", "r", "main", "half.gguf.partial"), "half");
  files = createServer((_req, res) => {
    res.writeHead(200, { "content-length": Buffer.byteLength(BEHAVIOUR) }).end(BEHAVIOUR);
  });
  files.listen(0, "127.0.0.1");
  await once(files, "listening");
  filesUrl = `http://127.0.0.1:${(files.address() as { port: number }).port}`;
});

afterEach(async () => {
  await neuron?.stop(0);
  neuron = undefined;
  files.closeAllConnections();
  files.close();
  await rm(dir, { recursive: true, force: true });
});

const call = (path: string, body?: unknown) =>
  fetch(`${neuron?.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const discovery = async (): Promise<DiscoveryAnswer> =>
  DiscoveryAnswer.parse(await (await call("/discovery")).json());

describe("GET /discovery sources", () => {
  it("lists complete files, and a finished download at once", async () => {
    neuron = await startNeuron(
      NeuronConfig.parse({
        name: "held-test",
        listen: "127.0.0.1:0",
        token: TOKEN,
        models_dir: models,
        state_dir: join(dir, "state"),
        devices: [{ vram_total_mb: 24_000 }],
        harnesses: { fake: fakeHarnessTemplate(["--alias", "{model_id}"]) },
        stop_grace_ms: 2000,
      }),
      pino({ level: "silent" }),
    );
    expect((await discovery()).sources).toEqual({
      models_dir: models,
      files: [{ path: "local.json", size_bytes: Buffer.byteLength(BEHAVIOUR) }],
      complete: true,
    });

    const load = await call("/models/load", {
      model_id: "remote",
      harness: "fake",
      source: `${filesUrl}/weights/m.json`,
      vram_mb: 1000,
    });
    expect(load.status).toBe(200);
    const port = new URL(filesUrl).port;
    await waitFor("the download in discovery", async () =>
      ((await discovery()).sources?.files ?? []).some(
        (file) => file.path === `downloads/127.0.0.1_${port}/weights/m.json`,
      ),
    );
  }, 30_000);
});
