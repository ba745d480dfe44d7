import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gpuDevice } from "@cortex/testkit";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defineHarness, type Harness } from "../harnesses/definitions.js";
import { testManager } from "../models/model-manager.fixtures.js";
import { localSources } from "../sources/preparer.js";
import type { ProcessRunner } from "../supervisor/process-runner.js";
import { startTestApp, type TestApp } from "./neuron-app.fixtures.js";

// POST /models/load with what issue 13 found: each hostile load is a 400 with the right param,
// and nothing on the node changes (no process is started, no model appears).

const TOKEN = "t";

let dir: string;
let app: TestApp;
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
  const manager = testManager({
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
    devices: () => [gpuDevice(0, 24_000, 24_000)],
  });
  app = await startTestApp(manager, { token: TOKEN });
});

beforeEach(() => {
  starts = 0;
  launched = [];
});

afterAll(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

const load = async (body: string) => {
  const res = await fetch(`${app.base}/models/load`, {
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
      await fetch(`${app.base}/models`, { headers: { authorization: `Bearer ${TOKEN}` } })
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

/**
 * Loads `body` and expects an invalid_request_error 400 with `error`'s fields, no harness
 * started, and no model listed under the body's id.
 */
const expectRefused = async (body: string, error: Record<string, unknown>) => {
  const answer = await load(body);
  expect(answer.status).toBe(400);
  expect(answer.body.error).toMatchObject({ type: "invalid_request_error", ...error });
  expect(starts).toBe(0);
  expect(await models()).not.toContain(id);
};

describe("POST /models/load refuses, changing nothing", () => {
  it.each([
    ["llamacpp", "m.gguf"],
    ["llama-server", "m.gguf"],
    ["vllm", "hf:trusted/repo"],
    ["engine", "hf:trusted/repo"],
  ])("%s: args.constructor is an unknown option", async (harness, source) => {
    await expectRefused(
      request(harness, source, '{"constructor":"--chat-template-file=/etc/shadow"}'),
      { param: "args", message: expect.stringContaining('has no option "constructor"') },
    );
  });

  it.each(["toString", "hasOwnProperty", "valueOf"])(
    "args.%s is refused too (option names are lowercase)",
    async (name) => {
      await expectRefused(request("llama-server", "m.gguf", `{"${name}":"x"}`), {
        param: `args.${name}`,
      });
    },
  );

  it("args.__proto__ is refused by the schema, and nothing starts", async () => {
    await expectRefused(
      request(
        "llama-server",
        "m.gguf",
        '{"__proto__":{"chat_template":"/etc/shadow"},"jinja":true}',
      ),
      { param: "args.__proto__", message: expect.stringContaining("__proto__") },
    );
  });

  it.each(["llamacpp", "llama-server"])(
    "%s: a whole hf: repository is refused on param source",
    async (harness) => {
      await expectRefused(request(harness, "hf:someone/models", "{}"), {
        param: "source",
        message: expect.stringContaining("not a whole repository"),
      });
    },
  );

  it.each([
    ["vllm", "hf:evil/repo"],
    ["vllm", "m.gguf"],
    ["engine", "hf:trusted/repo"],
  ])(
    "%s with source %s: trust_remote_code needs neuron.yaml's permission",
    async (harness, source) => {
      await expectRefused(request(harness, source, '{"trust_remote_code":true}'), {
        param: "args",
        message: expect.stringMatching(/neuron\.yaml.*trust_remote_code/),
      });
    },
  );

  it("lets an allowed repository through to the harness (which these tests never start)", async () => {
    const answer = await load(request("vllm", "hf:trusted/repo", '{"trust_remote_code":true}'));
    expect(answer.status).toBe(502);
    expect(starts).toBe(1);
  });
});
