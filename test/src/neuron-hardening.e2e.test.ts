import { spawn } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTinyModel } from "@cortex/harness-llamacpp";
import { environOf, FAKE_HARNESS_ENTRY, processesMentioning, waitFor } from "@cortex/testkit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  modelsOf,
  type NeuronProcess,
  startNeuron,
  statusOf,
  stopNeurons,
  testNeuronConfig,
} from "./support/neuron-process.js";

// Issue 13 against the built neuron: what a harness inherits, where it runs, and that no
// harness outlives its watchdog or survives a neuron restart. The fake harness (which, like
// llama-server, does not watch its parent) stands in where the built-in one would end itself.

let dir: string;
const running: NeuronProcess[] = [];
const strays: number[] = [];

const TOKEN = "hardening-secret";

/** The fake harness as a template; `sh` starts a `sleep 987` beside it, in its group. */
const FAKE = {
  command: [
    "/bin/sh",
    "-c",
    'sleep 987 & exec "$0" "$1" --model "$2" --port "$3" --alias "$4"',
    process.execPath,
    FAKE_HARNESS_ENTRY,
    "{model_path}",
    "{port}",
    "{model_id}",
  ],
};

const neuron = async (
  name: string,
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
) => {
  const started = await startNeuron(
    dir,
    testNeuronConfig(dir, name, TOKEN, {
      stop_grace_ms: 2000,
      harnesses: { llamacpp: {}, fake: FAKE },
      ...extra,
    }),
    env,
  );
  running.push(started);
  return started;
};

/** Live processes and their process groups, from /proc (zombies left out). */
const groups = (): { pid: number; pgid: number }[] =>
  readdirSync("/proc").flatMap((name) => {
    if (!/^\d+$/.test(name)) return [];
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, , pgid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return state === "Z" ? [] : [{ pid: Number(name), pgid: Number(pgid) }];
    } catch {
      return [];
    }
  });

const alive = (pid: number): boolean => groups().some((p) => p.pid === pid);

const membersOf = (pgid: number): number[] =>
  groups()
    .filter((p) => p.pgid === pgid)
    .map((p) => p.pid);

/** The fake harnesses serving `file` (not their watchdogs), and their watchdogs. */
const fakeHarnesses = (file: string) =>
  processesMentioning(join(dir, "models", file)).filter(
    (process) =>
      !process.cmdline.includes("watchdog.js") && process.cmdline.includes(FAKE_HARNESS_ENTRY),
  );
const watchdogsOf = (file: string) =>
  processesMentioning(join(dir, "models", file)).filter((process) =>
    process.cmdline.includes("watchdog.js"),
  );

const load = (node: NeuronProcess, body: Record<string, unknown>) =>
  node.api("/models/load", { body });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "neuron-hardening-e2e-"));
  await writeTinyModel(join(dir, "models", "tiny.gguf"), { seed: 1 });
  for (const name of ["orphan", "restart", "env"])
    await writeFile(join(dir, "models", `${name}.json`), JSON.stringify({ banner: name }));
});

afterEach(async () => {
  await stopNeurons(running);
  for (const pgid of strays.splice(0)) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

afterAll(async () => {
  for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

describe("a harness never outlives its watchdog", () => {
  it("SIGKILL of the watchdog ends its harness, and one harness serves the model after", async () => {
    const node = await neuron("orphan");
    const body = { model_id: "orphan", harness: "fake", source: "orphan.json" };
    expect((await load(node, body)).status).toBe(200);
    const [harness] = fakeHarnesses("orphan.json");
    const [watchdog] = watchdogsOf("orphan.json");
    expect(harness).toBeDefined();
    expect(watchdog).toBeDefined();
    const group = membersOf(watchdog?.pid as number);
    expect(group).toHaveLength(3); // watchdog, fake harness, sleep

    process.kill(watchdog?.pid as number, "SIGKILL");
    await waitFor(
      "the harness and its child to end",
      () => group.every((pid) => !alive(pid)),
      10_000,
    );
    // Crash recovery starts exactly one new harness, which serves the model.
    await waitFor("the restart", async () => (await statusOf(node, "orphan")) === "loaded");
    const after = fakeHarnesses("orphan.json");
    expect(after).toHaveLength(1);
    expect(after[0]?.pid).not.toBe(harness?.pid);
    const answer = await node.api("/v1/chat/completions", {
      body: { model: "orphan", messages: [{ role: "user", content: "hi" }] },
    });
    expect(answer.status).toBe(200);
  });

  it("a restarted neuron reaps what a SIGKILLed neuron and watchdog left, and nothing else", async () => {
    const node = await neuron("restart");
    const body = { model_id: "restart", harness: "fake", source: "restart.json" };
    expect((await load(node, body)).status).toBe(200);
    const [watchdog] = watchdogsOf("restart.json");
    const pgid = watchdog?.pid as number;
    expect(membersOf(pgid)).toHaveLength(3);

    node.child.kill("SIGKILL");
    process.kill(pgid, "SIGKILL");
    await node.exited;
    // SIGKILL is delivered asynchronously: the watchdog may still be listed for a moment.
    await waitFor("the watchdog to be gone", () => !alive(pgid), 10_000);
    // The watchdog's own check of its parent never ran: the harness and its child live on,
    // in a group without its leader.
    expect(fakeHarnesses("restart.json")).toHaveLength(1);
    expect(membersOf(pgid)).toHaveLength(2);

    // A group the records name whose leader is gone but which is not ours (as when a pid was
    // reused since): never killed.
    const decoy = spawn("/bin/sh", ["-c", "sleep 988 & exit 0"], {
      detached: true,
      stdio: "ignore",
    });
    await once(decoy, "exit");
    const decoyGroup = decoy.pid as number;
    strays.push(decoyGroup);
    const records = join(dir, "state-restart", "harnesses.json");
    const recorded = JSON.parse(readFileSync(records, "utf8")) as unknown[];
    await writeFile(
      records,
      JSON.stringify([...recorded, { pid: decoyGroup, model: "decoy", started_at: "" }]),
    );

    const again = await neuron("restart");
    await waitFor("the leftover group to be reaped", () => membersOf(pgid).length === 0, 10_000);
    expect(fakeHarnesses("restart.json")).toEqual([]);
    expect(again.output()).toContain("left over from an earlier run");
    expect(membersOf(decoyGroup)).toHaveLength(1);
    expect(await modelsOf(again)).toEqual([]);
  });
});

describe("what a harness gets from the neuron", () => {
  it("only the system variables, its inherit_env and env, in an empty directory of its own", async () => {
    const node = await neuron(
      "env",
      {
        harnesses: {
          llamacpp: {},
          fake: { ...FAKE, inherit_env: ["KEEP_ME"], env: { CONFIGURED: "yes" } },
        },
      },
      {
        NEURON_TOKEN: TOKEN,
        HF_TOKEN: "hf_e2e_secret",
        SOME_SECRET: "do-not-pass",
        KEEP_ME: "kept",
        NODE_OPTIONS: "--max-old-space-size=4096",
        LANG: "C.UTF-8",
      },
    );
    expect(
      (await load(node, { model_id: "env", harness: "fake", source: "env.json" })).status,
    ).toBe(200);
    expect(
      (
        await load(node, {
          model_id: "tiny",
          harness: "llamacpp",
          source: "tiny.gguf",
          context_length: 512,
        })
      ).status,
    ).toBe(200);

    const [fake] = fakeHarnesses("env.json");
    const [fakeWatchdog] = watchdogsOf("env.json");
    const builtin = processesMentioning(join(dir, "models", "tiny.gguf"));
    expect(builtin).toHaveLength(2);
    const records = join(dir, "state-env", "harnesses.json");
    for (const process of [fake, fakeWatchdog, ...builtin]) {
      const env = environOf(process?.pid as number);
      for (const secret of ["NEURON_TOKEN", "HF_TOKEN", "SOME_SECRET", "NODE_OPTIONS"])
        expect(env, `${secret} in ${process?.cmdline}`).not.toHaveProperty(secret);
      expect(env).toMatchObject({
        LANG: "C.UTF-8",
        CUDA_DEVICE_ORDER: "PCI_BUS_ID",
        CUDA_VISIBLE_DEVICES: "",
        CORTEX_HARNESS_OF: records,
      });
      expect(env.PATH).toBeTruthy();
      // PWD: the `sh` that starts the fake harness exports it.
      for (const name of Object.keys(env).filter((name) => name !== "PWD"))
        expect(name).toMatch(
          /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_\w+|TZ|TMPDIR|LD_LIBRARY_PATH|CUDA_HOME|CUDA_PATH|ROCM_PATH|HIP_PATH|CUDA_DEVICE_ORDER|CUDA_VISIBLE_DEVICES|CORTEX_HARNESS_OF|KEEP_ME|CONFIGURED)$/,
        );
    }
    expect(environOf(fake?.pid as number)).toMatchObject({ KEEP_ME: "kept", CONFIGURED: "yes" });
    expect(environOf(builtin[0]?.pid as number)).not.toHaveProperty("KEEP_ME");

    const cwd = readlinkSync(`/proc/${fake?.pid}/cwd`);
    expect(cwd.startsWith(join(dir, "state-env", "run", "harness-"))).toBe(true);
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe("hf:owner/repo", () => {
  it("is refused by the harnesses that take a file, before anything changes", async () => {
    const node = await neuron("repo-file");
    const answer = await load(node, {
      model_id: "tiny",
      harness: "llamacpp",
      source: "hf:someone/tiny",
    });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({
      error: { type: "invalid_request_error", param: "source" },
    });
    expect(await modelsOf(node)).toEqual([]);
  });

  it("reaches a repository harness as an id that no folder beside the neuron can answer", async () => {
    // A "model" named like the repository, relative to the neuron's working directory: before
    // issue 13 the harness, run there, loaded it from outside models_dir.
    const owner = `neuron-e2e-${process.pid}`;
    const folder = join(process.cwd(), owner);
    await mkdir(folder, { recursive: true });
    try {
      await writeFile(join(folder, "repo"), JSON.stringify({ banner: "outside models_dir" }));
      const node = await neuron("repo-id");
      const answer = await load(node, {
        model_id: "repo",
        harness: "fake",
        source: `hf:${owner}/repo`,
      });
      expect(answer.status).toBe(502);
      const { error } = (await answer.json()) as { error: { message: string } };
      expect(error.message).toContain(`${owner}/repo`);
      expect(error.message).not.toContain("outside models_dir");
      expect(fakeHarnesses("repo")).toEqual([]);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
