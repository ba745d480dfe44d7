import { silentLog } from "@cortex/http-kit";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { advertiseUrl } from "./advertise.js";
import { FORGOTTEN_AFTER_MS, JOIN_BACKOFF, Joiner } from "./joiner.js";

// The joiner against a scripted fetch, on fake timers: backoff after failures, one warning per
// failure naming its class, and a rejoin once cortex stops polling.

interface Call {
  readonly url: string;
  readonly authorization: string | null;
  readonly body: unknown;
}

let calls: Call[];
let answers: (number | "down")[];
let warnings: { object: Record<string, unknown>; message: string }[];

const fakeFetch = (async (url: string | URL | Request, init?: RequestInit) => {
  calls.push({
    url: String(url),
    authorization: new Headers(init?.headers).get("authorization"),
    body: JSON.parse(String(init?.body)),
  });
  const answer = answers.shift() ?? 200;
  if (answer === "down") throw new TypeError("fetch failed");
  return new Response(JSON.stringify({}), { status: answer });
}) as typeof fetch;

const log = {
  ...silentLog,
  warn: (object: object, message: string) =>
    warnings.push({ object: object as Record<string, unknown>, message }),
};

const joiner = () =>
  new Joiner({
    cortexUrl: "http://cortex:31313/",
    joinToken: "join-token-0123456789",
    name: "gpu-1",
    url: "http://gpu-1:13131",
    token: "neuron-token",
    log,
    fetch: fakeFetch,
  });

/** Lets the fetch promise chain settle between timer steps. */
const settle = async () => {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
};

beforeEach(() => {
  vi.useFakeTimers();
  calls = [];
  answers = [];
  warnings = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe("Joiner", () => {
  it("joins at once with its name, URL and token, under the join token", async () => {
    const subject = joiner();
    subject.start();
    await settle();
    expect(calls).toEqual([
      {
        url: "http://cortex:31313/api/neurons/join",
        authorization: "Bearer join-token-0123456789",
        body: { name: "gpu-1", url: "http://gpu-1:13131", token: "neuron-token" },
      },
    ]);
    expect(subject.joins).toBe(1);
    subject.stop();
  });

  it("backs off 1 s, 2 s, 4 s … up to 60 s, naming each failure's class", async () => {
    expect([1, 2, 3, 6, 7, 8, 100].map(Joiner.backoffMs)).toEqual([
      1000, 2000, 4000, 32_000, 60_000, 60_000, 60_000,
    ]);
    answers = ["down", 401, 409, 404, 500, 200];
    const subject = joiner();
    subject.start();
    await settle();
    expect(calls).toHaveLength(1);
    for (const wait of [1000, 2000, 4000, 8000, 16_000]) {
      await vi.advanceTimersByTimeAsync(wait - 1);
      const before = calls.length;
      await vi.advanceTimersByTimeAsync(1);
      await settle();
      expect(calls.length).toBe(before + 1);
    }
    expect(warnings.map((warning) => warning.object.failure)).toEqual([
      "unreachable",
      "unauthorized",
      "conflict",
      "disabled",
      "rejected",
    ]);
    expect(warnings[1]?.message).toContain("join token");
    expect(subject.joins).toBe(1);
    expect(JOIN_BACKOFF.maxMs).toBe(60_000);
    subject.stop();
  });

  it("joins again once cortex has not polled it for FORGOTTEN_AFTER_MS, not while it polls", async () => {
    const subject = joiner();
    subject.start();
    await settle();
    expect(calls).toHaveLength(1);
    // Polled every 2 s: no rejoin however long it runs.
    for (let elapsed = 0; elapsed < 3 * FORGOTTEN_AFTER_MS; elapsed += 2000) {
      subject.polled();
      await vi.advanceTimersByTimeAsync(2000);
    }
    expect(calls).toHaveLength(1);
    // Cortex forgets it: within the bound plus one check, it joins again.
    await vi.advanceTimersByTimeAsync(FORGOTTEN_AFTER_MS + FORGOTTEN_AFTER_MS / 3);
    await settle();
    expect(calls).toHaveLength(2);
    expect(warnings.map((warning) => warning.message)).toEqual([
      "cortex has not polled this neuron for a while; joining again",
    ]);
    subject.stop();
  });

  it("does nothing more once stopped", async () => {
    answers = ["down"];
    const subject = joiner();
    subject.start();
    await settle();
    subject.stop();
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(calls).toHaveLength(1);
  });
});

describe("advertiseUrl", () => {
  it("takes advertise_url as given, a specific listen IP, else the hostname", () => {
    expect(advertiseUrl("https://gpu-1.example.com/", "0.0.0.0", 13131, "h")).toBe(
      "https://gpu-1.example.com",
    );
    expect(advertiseUrl(undefined, "10.0.0.5", 13131, "h")).toBe("http://10.0.0.5:13131");
    expect(advertiseUrl(undefined, "fd00::5", 13131, "h")).toBe("http://[fd00::5]:13131");
    expect(advertiseUrl(undefined, "0.0.0.0", 13131, "gpu-1")).toBe("http://gpu-1:13131");
    expect(advertiseUrl(undefined, "::", 4000, "gpu-1")).toBe("http://gpu-1:4000");
  });
});
