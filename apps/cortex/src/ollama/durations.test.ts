import { describe, expect, it } from "vitest";
import { doneReasonOf, durationsOf, ns, usageOf } from "./durations.js";

describe("durationsOf", () => {
  const base = { startedMs: 100, sentMs: 102, loadMs: 0, queueMs: 0, endMs: 200 };

  it("splits a stream's time at its first token, in nanoseconds", () => {
    expect(
      durationsOf(
        { ...base, queueMs: 30, loadMs: 25, firstTokenMs: 150 },
        { prompt_tokens: 12, completion_tokens: 34 },
      ),
    ).toEqual({
      total_duration: 100_000_000,
      load_duration: 25_000_000,
      prompt_eval_count: 12,
      // From being served (sent + 30 ms of waiting) to the first token.
      prompt_eval_duration: 18_000_000,
      eval_count: 34,
      eval_duration: 50_000_000,
    });
  });

  it("gives a whole answer's served time to evaluation", () => {
    expect(durationsOf({ ...base, queueMs: 8, firstTokenMs: null }, null)).toEqual({
      total_duration: 100_000_000,
      load_duration: 0,
      prompt_eval_count: 0,
      prompt_eval_duration: 0,
      eval_count: 0,
      eval_duration: 90_000_000,
    });
  });

  it.each([
    [{ prompt_tokens: -1, completion_tokens: 1.5 }],
    [{ prompt_tokens: "3" as unknown as number }],
  ])("counts only whole token counts (%j)", (usage) => {
    const durations = durationsOf({ ...base, firstTokenMs: null }, usage);
    expect([durations.prompt_eval_count, durations.eval_count]).toEqual([0, 0]);
  });

  it("never answers a negative duration", () => {
    expect(ns(-5)).toBe(0);
    expect(durationsOf({ ...base, firstTokenMs: 101 }, null).prompt_eval_duration).toBe(0);
  });
});

describe("doneReasonOf", () => {
  it.each([
    ["stop", "stop"],
    ["length", "length"],
    ["tool_calls", "stop"],
    ["content_filter", "stop"],
    [null, "stop"],
  ])("%s → %s", (finish, reason) => {
    expect(doneReasonOf(finish)).toBe(reason);
  });
});

describe("usageOf", () => {
  it("reads an own usage object only", () => {
    expect(usageOf({ usage: { prompt_tokens: 1 } })).toEqual({ prompt_tokens: 1 });
    expect(usageOf({ usage: null })).toBeNull();
    expect(usageOf(Object.create({ usage: { prompt_tokens: 1 } }))).toBeNull();
    expect(usageOf("usage")).toBeNull();
  });
});
