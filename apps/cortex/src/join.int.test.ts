import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig, type CortexConfigInput, FleetAnswer, FleetEvent } from "@cortex/protocol";
import { type FakeNeuron, gpuDevice, neuronModel, startFakeNeuron } from "@cortex/testkit";
import { openAIProblems } from "@cortex/testkit/openai";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { JOIN_RATE } from "./api/join-routes.js";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";

// Neurons joining by themselves, end to end: cortex in-process against fake neurons on
// loopback. A neuron joins with a join token, is polled at once, shows as `joined` and serves;
// a rejoin updates it; DELETE forgets it (and its drain); it survives a restart on the same
// data_dir; static `neurons:` win over joins and reload from cortex.yaml without a restart.

const ADMIN = "join-admin";
const KEY = "sk-join";
const JOIN_TOKEN = "join-token-0123456789";
const NEURON_TOKEN = "join-neuron";

const CATALOGUE = {
  models: [{ id: "chat", harness: "llamacpp", source: "chat.gguf", vram_mb: 6000 }],
};

let dir: string;
let neurons: FakeNeuron[] = [];
const running = new Set<Cortex>();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-join-"));
  await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
  neurons = await Promise.all(
    ["static-a", "joiner", "joiner-2"].map((name) =>
      startFakeNeuron({
        name,
        token: NEURON_TOKEN,
        devices: [gpuDevice(0, 24_000)],
        models: name === "static-a" ? [] : [neuronModel("chat", { devices: [0], vram_mb: 6000 })],
      }),
    ),
  );
});

afterEach(async () => {
  for (const cortex of running) await cortex.stop(0);
  running.clear();
  await Promise.all(neurons.map((neuron) => neuron.close()));
  neurons = [];
  await rm(dir, { recursive: true, force: true });
});

const neuron = (name: string): FakeNeuron => {
  const found = neurons.find((entry) => entry.name === name);
  if (!found) throw new Error(`no fake neuron ${name}`);
  return found;
};

const configInput = (overrides: Partial<CortexConfigInput> = {}): CortexConfigInput => ({
  listen: "127.0.0.1:0",
  catalogue: dir,
  data_dir: ":memory:",
  poll_interval_ms: 100,
  discovery_interval_ms: 5000,
  poll_timeout_ms: 500,
  api_keys: [KEY],
  admin_token: ADMIN,
  join_tokens: [JOIN_TOKEN],
  neurons: [{ name: "static-a", url: neuron("static-a").url, token: NEURON_TOKEN }],
  ...overrides,
});

const start = async (
  overrides: Partial<CortexConfigInput> = {},
  source?: Parameters<typeof startCortex>[2],
): Promise<Cortex> => {
  const cortex = await startCortex(CortexConfig.parse(configInput(overrides)), silentLog, source);
  running.add(cortex);
  return cortex;
};

const call = (cortex: Cortex, method: string, path: string, token: string, body?: unknown) =>
  fetch(`${cortex.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const joinAs = (cortex: Cortex, name: string, url: string, token = JOIN_TOKEN) =>
  call(cortex, "POST", "/api/neurons/join", token, { name, url, token: NEURON_TOKEN });

const fleet = async (cortex: Cortex) =>
  FleetAnswer.parse(await (await call(cortex, "GET", "/api/fleet", ADMIN)).json());

const nodeOf = async (cortex: Cortex, name: string) =>
  (await fleet(cortex)).nodes.find((node) => node.name === name);

const chat = (cortex: Cortex) =>
  fetch(`${cortex.url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "hi" }] }),
  });

const errorOf = async (response: Response) => {
  const body = (await response.json()) as { error: { code: string | null; message: string } };
  expect(openAIProblems("ErrorResponse", body)).toEqual([]);
  return body.error;
};

const recordEvents = (cortex: Cortex): FleetEvent[] => {
  const events: FleetEvent[] = [];
  cortex.store.subscribe((event) => events.push(FleetEvent.parse(event)));
  return events;
};

describe("joining", () => {
  it("adds the neuron at once: polled, shown as joined, and serving", async () => {
    const cortex = await start();
    const events = recordEvents(cortex);
    const answer = await joinAs(cortex, "joiner", neuron("joiner").url);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ name: "joiner", polled: true });
    expect(events).toContainEqual(
      expect.objectContaining({ type: "node_joined", node: "joiner", url: neuron("joiner").url }),
    );
    await expect
      .poll(async () => (await nodeOf(cortex, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
    const view = await fleet(cortex);
    expect(view.nodes.map((node) => [node.name, node.origin])).toEqual([
      ["static-a", "static"],
      ["joiner", "joined"],
    ]);
    // The neuron's token reaches the neuron, and no answer shows it.
    expect(JSON.stringify(view)).not.toContain(NEURON_TOKEN);
    const served = await chat(cortex);
    expect(served.status).toBe(200);
    expect(served.headers.get("x-cortex-node")).toBe("joiner");
    expect(neuron("joiner").headers?.authorization).toBe(`Bearer ${NEURON_TOKEN}`);
  });

  it("refuses a wrong or missing join token (401), the admin token too, and says when joining is off (404)", async () => {
    const cortex = await start();
    const wrong = await joinAs(cortex, "joiner", neuron("joiner").url, "not-the-join-token");
    expect(wrong.status).toBe(401);
    expect((await errorOf(wrong)).code).toBe("invalid_api_key");
    expect((await joinAs(cortex, "joiner", neuron("joiner").url, ADMIN)).status).toBe(401);
    expect(await nodeOf(cortex, "joiner")).toBeUndefined();

    const off = await start({ join_tokens: [] });
    const refused = await joinAs(off, "joiner", neuron("joiner").url);
    expect(refused.status).toBe(404);
    expect((await errorOf(refused)).message).toContain("joining is off");
  });

  it("validates the body: name, URL and token, bounded", async () => {
    const cortex = await start();
    for (const body of [
      { name: "bad name!", url: neuron("joiner").url },
      { name: "joiner", url: "ftp://example.com" },
      { name: "joiner", url: `http://h/${"x".repeat(3000)}` },
      { name: "joiner", url: neuron("joiner").url, extra: 1 },
      [1, 2],
    ]) {
      const answer = await call(cortex, "POST", "/api/neurons/join", JOIN_TOKEN, body);
      expect(answer.status).toBe(400);
      expect((await errorOf(answer)).code).toBe("invalid_request_error");
    }
    const huge = await call(cortex, "POST", "/api/neurons/join", JOIN_TOKEN, {
      name: "joiner",
      url: neuron("joiner").url,
      token: "t".repeat(20_000),
    });
    expect(huge.status).toBe(413);
  });

  it("refuses a join under a static node's name (409): static wins", async () => {
    const cortex = await start();
    const answer = await joinAs(cortex, "static-a", neuron("joiner").url);
    expect(answer.status).toBe(409);
    const error = await errorOf(answer);
    expect(error.code).toBe("static_node");
    expect((await nodeOf(cortex, "static-a"))?.url).toBe(neuron("static-a").url);
  });

  it("takes a rejoin with a new URL as an update", async () => {
    const cortex = await start();
    await joinAs(cortex, "joiner", neuron("joiner").url);
    await expect
      .poll(async () => (await nodeOf(cortex, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
    const again = await joinAs(cortex, "joiner", neuron("joiner-2").url);
    expect(again.status).toBe(200);
    expect((await nodeOf(cortex, "joiner"))?.url).toBe(neuron("joiner-2").url);
    await expect
      .poll(async () => (await nodeOf(cortex, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
    expect((await fleet(cortex)).nodes.filter((node) => node.name === "joiner")).toHaveLength(1);
  });

  it("bounds join attempts per window", async () => {
    const cortex = await start();
    const answers = await Promise.all(
      Array.from({ length: JOIN_RATE.max + 5 }, () =>
        joinAs(cortex, "joiner", neuron("joiner").url, "wrong-token-xxxxxxxx"),
      ),
    );
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 401)).toHaveLength(JOIN_RATE.max);
    expect(statuses.filter((status) => status === 503)).toHaveLength(5);
  });
});

describe("removing", () => {
  it("forgets a joined node and its drain; 404 for an unknown one, 409 for a static one", async () => {
    const cortex = await start();
    const events = recordEvents(cortex);
    await joinAs(cortex, "joiner", neuron("joiner").url);
    await expect
      .poll(async () => (await nodeOf(cortex, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
    expect((await call(cortex, "POST", "/api/nodes/joiner/drain", ADMIN)).status).toBe(200);

    expect((await call(cortex, "DELETE", "/api/neurons/joiner", JOIN_TOKEN)).status).toBe(401);
    const removed = await call(cortex, "DELETE", "/api/neurons/joiner", ADMIN);
    expect(removed.status).toBe(200);
    expect(await removed.json()).toEqual({ name: "joiner", removed: true });
    expect(await nodeOf(cortex, "joiner")).toBeUndefined();
    expect(events).toContainEqual(
      expect.objectContaining({ type: "node_removed", node: "joiner" }),
    );
    // Nothing routes there any more.
    expect((await chat(cortex)).headers.get("x-cortex-node")).not.toBe("joiner");

    const unknown = await call(cortex, "DELETE", "/api/neurons/joiner", ADMIN);
    expect(unknown.status).toBe(404);
    const fixed = await call(cortex, "DELETE", "/api/neurons/static-a", ADMIN);
    expect(fixed.status).toBe(409);
    expect((await errorOf(fixed)).message).toContain("remove it from cortex.yaml");

    // Joining again starts in service: the drain went with the node.
    await joinAs(cortex, "joiner", neuron("joiner").url);
    expect((await nodeOf(cortex, "joiner"))?.drain).toBeNull();
  });
});

describe("persistence", () => {
  it("keeps a joined node across a restart on the same data_dir, and a removal too", async () => {
    const dataDir = join(dir, "state");
    const first = await start({ data_dir: dataDir });
    await joinAs(first, "joiner", neuron("joiner").url);
    await joinAs(first, "joiner-2", neuron("joiner-2").url);
    await call(first, "DELETE", "/api/neurons/joiner-2", ADMIN);
    await first.stop(0);
    running.delete(first);

    const again = await start({ data_dir: dataDir });
    await expect
      .poll(async () => (await nodeOf(again, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
    expect((await nodeOf(again, "joiner"))?.origin).toBe("joined");
    expect(await nodeOf(again, "joiner-2")).toBeUndefined();
    expect((await chat(again)).headers.get("x-cortex-node")).toBe("joiner");
  });
});

describe("reloading cortex.yaml's neurons", () => {
  it("adds, changes and removes static nodes in place; other keys wait for a restart", async () => {
    const cortex = await start();
    await joinAs(cortex, "joiner-2", neuron("joiner-2").url);
    const events = recordEvents(cortex);
    const diff = cortex.applyConfig(
      CortexConfig.parse(
        configInput({
          poll_interval_ms: 250,
          neurons: [{ name: "joiner", url: neuron("joiner").url, token: NEURON_TOKEN }],
        }),
      ),
    );
    expect(diff.added.map((target) => target.name)).toEqual(["joiner"]);
    expect(diff.removed).toEqual(["static-a"]);
    expect(await nodeOf(cortex, "static-a")).toBeUndefined();
    expect(events).toContainEqual(
      expect.objectContaining({ type: "node_removed", node: "static-a" }),
    );
    await expect
      .poll(async () => (await nodeOf(cortex, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
    expect((await nodeOf(cortex, "joiner"))?.origin).toBe("static");
    // The joined node is untouched by a reload.
    expect((await nodeOf(cortex, "joiner-2"))?.origin).toBe("joined");

    // A static entry takes a joined node's name: static wins.
    cortex.applyConfig(
      CortexConfig.parse(
        configInput({
          neurons: [
            { name: "joiner", url: neuron("joiner").url, token: NEURON_TOKEN },
            { name: "joiner-2", url: neuron("joiner-2").url, token: NEURON_TOKEN, priority: 5 },
          ],
        }),
      ),
    );
    const node = await nodeOf(cortex, "joiner-2");
    expect([node?.origin, node?.priority]).toEqual(["static", 5]);
  });

  it("follows edits of the file, and keeps the last good config on a bad edit", async () => {
    await mkdir(join(dir, "etc"));
    const file = join(dir, "etc", "cortex.yaml");
    await writeFile(file, stringify(configInput()));
    const cortex = await start({}, { file, env: {}, debounceMs: 30 });
    expect((await fleet(cortex)).nodes.map((node) => node.name)).toEqual(["static-a"]);

    await writeFile(file, "neurons: [ {name: \n");
    expect(cortex.reloadConfig()).toBe(false);
    expect((await fleet(cortex)).nodes.map((node) => node.name)).toEqual(["static-a"]);

    await writeFile(
      file,
      stringify(
        configInput({
          neurons: [{ name: "joiner", url: neuron("joiner").url, token: NEURON_TOKEN }],
        }),
      ),
    );
    await expect
      .poll(async () => (await fleet(cortex)).nodes.map((node) => node.name), { timeout: 5000 })
      .toEqual(["joiner"]);
    await expect
      .poll(async () => (await nodeOf(cortex, "joiner"))?.healthy, { timeout: 3000 })
      .toBe(true);
  });
});
