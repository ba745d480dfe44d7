import { describe, expect, it } from "vitest";
import { classify, longestGap, measure, type Placed } from "./failover-load.js";

const DONE = 'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n';
const ERROR_EVENT = `data: {"choices":[]}\n\n\ndata: ${JSON.stringify({
  error: { message: "gone", type: "server_error", code: "upstream_error" },
})}\n\n`;

describe("classify", () => {
  it.each([
    ["a JSON answer", 200, "json", '{"choices":[]}', "ok", ""],
    ["a JSON answer cut short", 200, "json", '{"choi', "cut", ""],
    [
      "an error with the envelope",
      504,
      "json",
      '{"error":{"code":"upstream_timeout"}}',
      "error",
      "upstream_timeout",
    ],
    [
      "an error with a type only",
      502,
      "json",
      '{"error":{"type":"server_error"}}',
      "error",
      "server_error",
    ],
    ["an error without the envelope", 502, "json", "Bad Gateway", "no envelope", ""],
    ["a whole stream", 200, "stream", DONE, "ok", ""],
    [
      "a stream that ended with an error event",
      200,
      "stream",
      ERROR_EVENT,
      "error event",
      "upstream_error",
    ],
    ["a stream cut before [DONE]", 200, "stream", 'data: {"choices":[]}\n\n', "cut", ""],
  ] as const)("%s", (_, status, kind, body, outcome, code) => {
    expect(classify(status, kind, body)).toEqual({ outcome, code });
  });
});

describe("longestGap", () => {
  it("is the longest stretch between consecutive instants", () => {
    expect(longestGap([0, 300, 310, 2_000, 2_300])).toBe(1_690);
    expect(longestGap([5])).toBe(0);
  });
});

const record = (over: Partial<Placed>): Placed => ({
  id: "r",
  kind: "json",
  sentMs: 0,
  doneMs: 300,
  silenceMs: 300,
  status: 200,
  outcome: "ok",
  code: "",
  node: "gpu-a",
  servedBy: "gpu-a",
  ...over,
});

describe("measure", () => {
  const failMs = 1_000;
  const records = [
    record({ id: "before", sentMs: 0, doneMs: 300 }),
    record({ id: "retried", sentMs: 900, doneMs: 10_400, silenceMs: 9_500 }),
    record({
      id: "timed out",
      sentMs: 1_500,
      doneMs: 121_500,
      silenceMs: 120_000,
      status: 504,
      outcome: "error",
      code: "upstream_timeout",
      node: "",
      servedBy: "gpu-b",
    }),
    record({ id: "cut", sentMs: 2_000, doneMs: 2_500, status: 200, outcome: "cut", servedBy: "" }),
  ];
  const m = measure(records, failMs, "gpu-b", 300);

  it("counts failures by status, outcome and code, and the clear ones", () => {
    expect(m.requests).toBe(4);
    expect(m.successes).toBe(2);
    expect(m.failures).toEqual({ "504 upstream_timeout": 1, "200 cut": 1 });
    expect(m.clear).toBe(3);
  });

  it("measures the requests in flight at the failure or sent after it", () => {
    expect(m.affected).toBe(3);
    expect(m.latency_before_ms.n).toBe(1);
    expect(m.latency_affected_ms.max).toBe(120_000);
  });

  it("takes the longest silence less one answer step as the wait on the failed node", () => {
    expect(m.longest_wait_ms).toBe(119_700);
    expect(m.longest_wait?.id).toBe("timed out");
    expect(m.longest_wait?.sent_after_failure_ms).toBe(500);
  });

  it("finds the last request sent after the failure that ended on the failed node", () => {
    expect(m.last_sent_to_failed_ms).toBe(500);
    expect(measure(records.slice(0, 2), failMs, "gpu-b", 300).last_sent_to_failed_ms).toBeNull();
  });
});
