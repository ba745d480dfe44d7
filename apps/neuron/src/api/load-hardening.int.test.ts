import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listen } from "@cortex/http-kit";
import type { DiscoveryAnswer } from "@cortex/protocol";
import { gpuDevice } from "@cortex/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { ModelManager } from "../models/model-manager.js";
import { localSources } from "../sources/preparer.js";
import type { ProcessRunner } from "../supervisor/process-runner.js";
import { createNeuronApp } from "./app.js";

// POST /models/load with what issue 13 found: each hostile load is a 400 with the right param,
// and nothing on the node changes (no process is started, no model appears).

const TOKEN = "t";
const silent = { info: () => {}, warn: () => {}, error: () => {} };

const discovery: DiscoveryAnswer = {
  node: { name: "n", hostname: "n", os: "Linux", kernel: "6", cpu: "c", memory_mb: 1024 },
  devices: [gpuDevice(0, 24_000, 24_000)],
  harnesses: [],
};

let dir: string;
let server: Server;
let base: string;
let starts: number;
let launched: string[][];

const runner: ProcessRunner = {
  start: (launch) => {
    starts += 1;
    launched.push([launch.command, ...launch.args]);
    throw new Error("no harness may start in these tests");
  },
};

const define = (name: string, config: Parameters<typeof defineHarness>[1]): [string, Harness] => [
  name,
  defineHarness(name, config, { node: process.execPath, entry: "unused" }) as Harness,
];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-load-hardening-"));
  await writeFile(join(dir, "m.gguf"), "");
  const manager = new ModelManager(
    {
      harnesses: new Map([
        define("llamacpp", {}),
        define("llama-server", { command: "/opt/llama/llama-server" }),
        define("vllm", { command: ["/opt/vllm/bin/vllm"], trust_remote_code: ["trusted/repo"] }),
        define("engine", {
          command: ["/opt/engine", "--model", "{model_path}", "--port={port}"],
          options: { trust_remote_code: "--trust-remote-code" },
        }),
      ]),
      runner,
      sources: localSources({ modelsDir: dir, hfEndpoint: "http://127.0.0.1:9" }),
      devices: () => discovery.devices,
      freePort: async () => 1,
      probe: async () => false,
      log: silent,
    },
    {
      selfUrl: "http://localhost:1",
      defaultIdleTtlS: 0,
      stopGraceMs: 100,
      readyTimeoutMs: () => 1000,
      readyPollMs: 10,
      restartDelaysMs: [],
      stableAfterMs: 60_000,
      maxQueued: 1,
      queueTimeoutMs: 1000,
      harnessEnv: {},
    },
  );
  const app = createNeuronApp({
    token: TOKEN,
    version: "0.1.0",
    startedAtMs: Date.now(),
    selfUrl: "http://localhost:1",
    manager,
    discovery: () => discovery,
    status: () => "ok",
    log: silent,
  });
  server = await listen(app, 0, "127.0.0.1");
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  starts = 0;
  launched = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const load = async (body: string) => {
  const res = await fetch(`${base}/models/load`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body,
  });
  return { status: res.status, body: (await res.json()) as { error?: Record<string, unknown> } };
};

/** Ids of the models the node lists. */
const models = async () =>
  (
    (await (
      await fetch(`${base}/models`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json()) as { id: string }[]
  ).map((model) => model.id);

let ids = 0;
let id = "";

/** A load body for a model id of its own (kept in `id`), so no test sees another's traces. */
const request = (harness: string, source: string, args: string) => {
  ids += 1;
  id = `m${ids}`;
  return `{"model_id":"${id}","harness":"${harness}","source":"${source}","args":${args}}`;
};

describe("POST /models/load refuses, changing nothing", () => {
  it.each([
    ["llamacpp", "m.gguf"],
    ["llama-server", "m.gguf"],
    ["vllm", "hf:trusted/repo"],
    ["engine", "hf:trusted/repo"],
  ])("%s: args.constructor is an unknown option", async (harness, source) => {
    const answer = await load(
      request(harness, source, '{"constructor":"--chat-template-file=/etc/shadow"}'),
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({
      type: "invalid_request_error",
      param: "args",
      message: expect.stringContaining('has no option "constructor"'),
    });
    expect(starts).toBe(0);
    expect(await models()).not.toContain(id);
  });

  it.each(["toString", "hasOwnProperty", "valueOf"])(
    "args.%s is refused too (option names are lowercase)",
    async (name) => {
      const answer = await load(request("llama-server", "m.gguf", `{"${name}":"x"}`));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toMatchObject({
        type: "invalid_request_error",
        param: `args.${name}`,
      });
      expect(starts).toBe(0);
      expect(await models()).not.toContain(id);
    },
  );

  it("args.__proto__ never reaches a harness (the schema drops the key before the neuron)", async () => {
    await load(
      request(
        "llama-server",
        "m.gguf",
        '{"__proto__":{"chat_template":"/etc/shadow"},"jinja":true}',
      ),
    );
    expect(launched).toHaveLength(1);
    expect(launched[0]).toContain("--jinja");
    expect(launched[0]?.join(" ")).not.toMatch(/shadow|chat-template|undefined/);
  });

  it.each(["llamacpp", "llama-server"])(
    "%s: a whole hf: repository is refused on param source",
    async (harness) => {
      const answer = await load(request(harness, "hf:someone/models", "{}"));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toMatchObject({
        type: "invalid_request_error",
        param: "source",
        message: expect.stringContaining("not a whole repository"),
      });
      expect(starts).toBe(0);
      expect(await models()).not.toContain(id);
    },
  );

  it.each([
    ["vllm", "hf:evil/repo"],
    ["vllm", "m.gguf"],
    ["engine", "hf:trusted/repo"],
  ])(
    "%s with source %s: trust_remote_code needs neuron.yaml's permission",
    async (harness, source) => {
      const answer = await load(request(harness, source, '{"trust_remote_code":true}'));
      expect(answer.status).toBe(400);
      expect(answer.body.error).toMatchObject({
        type: "invalid_request_error",
        param: "args",
        message: expect.stringMatching(/neuron\.yaml.*trust_remote_code/),
      });
      expect(starts).toBe(0);
      expect(await models()).not.toContain(id);
    },
  );

  it("lets an allowed repository through to the harness (which these tests never start)", async () => {
    const answer = await load(request("vllm", "hf:trusted/repo", '{"trust_remote_code":true}'));
    expect(answer.status).toBe(502);
    expect(starts).toBe(1);
  });
});
