import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig } from "@cortex/protocol";
import { type FakeNeuron, startFakeNeuron } from "@cortex/testkit";
import { APIError } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  ADMIN,
  CATALOGUE,
  chat,
  client,
  gpu,
  KEY,
  NEURON_TOKEN,
  resident,
} from "./cortex.fixtures.js";
import { type Cortex, startCortex } from "./cortex.js";
import { silentLog } from "./log.js";
import { type Relay, startRelay } from "./relay.fixtures.js";

// Fast failover (issue 16) when a node is cut off rather than dead: node "a" is reached through
// a relay that starts dropping every byte, so nothing is refused or reset and only the polls'
// timeouts can tell. A request already on "a" must not wait for stream_idle_timeout_ms (a
// minute here, longer than these tests may run): once "a" is unhealthy and the request has had
// no byte for the grace (2 s), one without a byte is answered by "b" and a stream that had
// bytes ends with an error event.

const POLLS = { poll_interval_ms: 100, poll_timeout_ms: 500, unhealthy_after_failures: 2 };

let closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const close of closers.reverse()) await close();
  closers = [];
});

/** Nodes "a" (through a relay) and "b", both with chat-small loaded, and cortex over them. */
const cutOffFleet = async (): Promise<{
  c: Cortex;
  a: FakeNeuron;
  b: FakeNeuron;
  relay: Relay;
}> => {
  const dir = await mkdtemp(join(tmpdir(), "cortex-partition-"));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "models.yaml"), stringify(CATALOGUE));
  const [a, b] = await Promise.all(
    ["a", "b"].map((name) =>
      startFakeNeuron({
        name,
        token: NEURON_TOKEN,
        devices: [gpu(0, 24_000)],
        models: [resident("chat-small")],
        streamChunks: 200,
      }),
    ),
  );
  if (!a || !b) throw new Error("fake neurons did not start");
  closers.push(
    () => a.close(),
    () => b.close(),
  );
  const relay = await startRelay(a.port);
  closers.push(() => relay.close());
  const c = await startCortex(
    CortexConfig.parse({
      listen: "127.0.0.1:0",
      catalogue: dir,
      data_dir: ":memory:",
      discovery_interval_ms: 5000,
      api_keys: [KEY],
      admin_token: ADMIN,
      stream_idle_timeout_ms: 60_000,
      // Without affinity the first request goes to "a", the first by name.
      affinity: { enabled: false },
      neurons: [
        { name: "a", url: relay.url, token: NEURON_TOKEN },
        { name: "b", url: b.url, token: NEURON_TOKEN },
      ],
      ...POLLS,
    }),
    silentLog,
  );
  closers.push(() => c.stop(0));
  await expect
    .poll(() => c.store.snapshot.nodes.every((node) => node.healthy), { timeout: 5000 })
    .toBe(true);
  return { c, a, b, relay };
};

describe("a node cut off mid-request", () => {
  it("answers a request that had no byte yet from the other replica", async () => {
    const { c, a, b, relay } = await cutOffFleet();
    a.setLatency(60_000);
    const answer = chat(c, "chat-small");
    await expect.poll(() => a.inFlight("chat-small"), { timeout: 5000 }).toBe(1);
    const cutAt = performance.now();
    relay.partition();
    const response = await answer;
    const waitedMs = performance.now() - cutAt;
    expect(response.status).toBe(200);
    expect(response.headers.get("x-cortex-node")).toBe("b");
    expect(b.requests.get("chat-small")).toBe(1);
    expect(c.store.snapshot.nodes.find((node) => node.name === "a")?.healthy).toBe(false);
    process.stderr.write(
      `cut-off node, request without a byte: answered by b ${Math.round(waitedMs)} ms after the cut\n`,
    );
  }, 20_000);

  it("ends a stream that had bytes with an error event, and uses the node again once it answers", async () => {
    const { c, a, relay } = await cutOffFleet();
    a.setLatency(100);
    const chunks: string[] = [];
    let cutAt = 0;
    const consume = async () => {
      const stream = await client(c).chat.completions.create({
        model: "chat-small",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      for await (const chunk of stream) {
        chunks.push(chunk.choices[0]?.delta?.content ?? "");
        if (chunks.length === 2) {
          cutAt = performance.now();
          relay.partition();
        }
      }
    };
    const raised = await consume().then(
      () => null,
      (error: unknown) => error,
    );
    const waitedMs = performance.now() - cutAt;
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    expect(raised).toBeInstanceOf(APIError);
    expect(raised).toMatchObject({ code: "upstream_error" });
    expect((raised as Error).message).toMatch(
      /^node a became unhealthy \(.*\): the neuron serving "chat-small" went silent there/,
    );
    process.stderr.write(
      `cut-off node, stream with bytes: error event ${Math.round(waitedMs)} ms after the cut\n`,
    );

    relay.heal();
    a.setLatency(0);
    await expect
      .poll(() => c.store.snapshot.nodes.find((node) => node.name === "a")?.healthy, {
        timeout: 5000,
      })
      .toBe(true);
    const again = await chat(c, "chat-small");
    expect(again.status).toBe(200);
  }, 20_000);
});
