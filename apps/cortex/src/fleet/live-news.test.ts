import { describe, expect, it } from "vitest";
import { applyNews, LiveMarks } from "./live-news.js";
import { model } from "./poller.fixtures.js";

// The pure half of live state: a node's models after one piece of news, and a poll answer
// merged with the news that came while it was out.

const ids = (models: readonly { id: string; status: string; in_flight: number }[]) =>
  models.map((entry) => `${entry.id}:${entry.status}/${entry.in_flight}`);

describe("applyNews", () => {
  const m1 = model("m1");
  const m2 = model("m2", { status: "loading" });
  const models = [m1, m2];

  it.each([
    [
      "a new model, appended",
      { kind: "model", model: model("m3") },
      ["m1:loaded/0", "m2:loading/0", "m3:loaded/0"],
    ],
    [
      "a changed model, in place",
      { kind: "model", model: model("m2") },
      ["m1:loaded/0", "m2:loaded/0"],
    ],
    [
      "counts that changed",
      { kind: "model", model: model("m1", { in_flight: 2 }) },
      ["m1:loaded/2", "m2:loading/0"],
    ],
    ["a removal", { kind: "removed", id: "m1" }, ["m2:loading/0"]],
    ["a snapshot", { kind: "snapshot", models: [model("m4")] }, ["m4:loaded/0"]],
  ] as const)("applies %s", (_what, news, expected) => {
    const next = applyNews(models, news);
    expect(ids(next)).toEqual(expected);
    expect(ids(models)).toEqual(["m1:loaded/0", "m2:loading/0"]);
  });

  it.each([
    ["the same model", { kind: "model", model: model("m1") }],
    ["the removal of an unknown model", { kind: "removed", id: "nope" }],
    [
      "an equal snapshot",
      { kind: "snapshot", models: [model("m1"), model("m2", { status: "loading" })] },
    ],
  ] as const)("keeps the very same array for %s", (_what, news) => {
    expect(applyNews(models, news)).toBe(models);
  });
});

describe("LiveMarks.merge", () => {
  const answer = () => [model("m1", { in_flight: 5 }), model("m2")];

  it("takes the whole answer when no news came since it left", () => {
    const marks = new LiveMarks();
    marks.record("a", { kind: "model", model: model("m1") });
    const mark = marks.mark("a");
    const fresh = answer();
    expect(marks.merge("a", mark, fresh, [])).toBe(fresh);
  });

  it("keeps the news's version of touched models, present or gone, and the answer's of the rest", () => {
    const marks = new LiveMarks();
    const mark = marks.mark("a");
    marks.record("a", { kind: "model", model: model("m3") });
    marks.record("a", { kind: "removed", id: "m2" });
    const current = [model("m1"), model("m3")];
    expect(ids(marks.merge("a", mark, answer(), current))).toEqual(["m1:loaded/5", "m3:loaded/0"]);
    // Another node's news is its own.
    expect(ids(marks.merge("b", 0, answer(), current))).toEqual(["m1:loaded/5", "m2:loaded/0"]);
  });

  it("keeps the current list when a snapshot came after the answer left", () => {
    const marks = new LiveMarks();
    const mark = marks.mark("a");
    marks.record("a", { kind: "snapshot", models: [model("m9")] });
    expect(ids(marks.merge("a", mark, answer(), [model("m9")]))).toEqual(["m9:loaded/0"]);
  });

  it("forgets what news touched once the poll is applied", () => {
    const marks = new LiveMarks();
    marks.record("a", { kind: "removed", id: "m2" });
    marks.settle("a");
    // A poll from before the settle cannot exist; one with an old mark sees nothing newer.
    expect(ids(marks.merge("a", 0, answer(), []))).toEqual(["m1:loaded/5", "m2:loaded/0"]);
  });
});
