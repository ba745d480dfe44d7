import { describe, expect, it } from "vitest";
import { runResolveBench } from "./resolve-bench.js";

// Smoke only: the benchmark runs and reports every scenario. Timings are never asserted here.
describe("resolve benchmark (smoke)", () => {
  it("measures both scenarios at each size", () => {
    const report = runResolveBench([10, 50], 50);
    expect(report.results.map((r) => `${r.nodes}:${r.scenario}`)).toEqual([
      "10:route-loaded",
      "10:cold-placement",
      "50:route-loaded",
      "50:cold-placement",
    ]);
    for (const result of report.results) expect(result.median_us).toBeGreaterThan(0);
  });
});
