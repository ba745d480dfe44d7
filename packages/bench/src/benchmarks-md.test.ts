import { describe, expect, it } from "vitest";
import { alignTable, spliceBenchmarksMd } from "./benchmarks-md.js";
import type { BenchResult } from "./support.js";

const EXISTING = [
  "# Benchmarks",
  "",
  "- date: 2026-11-27T01:26:24.144Z",
  "- command: `npx -y pnpm@10.34.9 bench`, 209 s",
  "",
  "## Budgets",
  "",
  "| budget | measured | result |",
  "| ------ | -------- | ------ |",
  "| proxy adds ≤ 1 ms | 0.83 ms | PASS |",
  "| attack survives | peak 900 MiB | MISS |",
  "",
  "Routing-decision timings are elsewhere.",
  "",
  "## Proxy overhead",
  "",
  "proxy numbers",
  "",
  "## Body attack",
  "",
  "old attack numbers",
  "",
].join("\n");

const result = (measured: string, text: string): BenchResult => ({
  name: "body-attack",
  title: "Body attack",
  markdown: `${text}\n\n| a | bb |\n| --- | --- |\n| 1 | 2 |`,
  budgets: [{ budget: "attack survives", measured, pass: true }],
});

const run = { date: "2026-12-07T00:00:00.000Z", command: "node main.js --only body-attack" };

describe("spliceBenchmarksMd", () => {
  it("replaces the rerun benchmark's rows and section and keeps the others'", () => {
    const md = spliceBenchmarksMd(EXISTING, [result("peak 500 MiB", "new attack numbers")], {
      ...run,
      durationS: 30,
    });
    expect(md).toContain("| proxy adds ≤ 1 ms | 0.83 ms      | PASS   |");
    expect(md).toContain("| attack survives   | peak 500 MiB | PASS   |");
    expect(md).not.toContain("peak 900 MiB");
    expect(md).toContain("proxy numbers");
    expect(md).toContain("new attack numbers");
    expect(md).not.toContain("old attack numbers");
    expect(md).toContain("| a   | bb  |");
    expect(md).toContain(
      "- body-attack rerun alone: 2026-12-07T00:00:00.000Z (`node main.js --only body-attack`), 30 s",
    );
    expect(md.indexOf("body-attack rerun alone")).toBeLessThan(md.indexOf("## Budgets"));
    expect(md.endsWith("new attack numbers\n\n| a   | bb  |\n| --- | --- |\n| 1   | 2   |\n")).toBe(
      true,
    );
  });

  it("adds a benchmark that was not there, and a second rerun replaces the first", () => {
    const without = EXISTING.replace(/## Body attack[\s\S]*$/, "");
    const once = spliceBenchmarksMd(without, [result("peak 500 MiB", "first")], {
      ...run,
      durationS: 30,
    });
    const twice = spliceBenchmarksMd(once, [result("peak 510 MiB", "second")], {
      ...run,
      durationS: 31,
    });
    expect(twice.match(/rerun alone/g)).toHaveLength(1);
    expect(twice).toContain("), 31 s");
    expect(twice.match(/\| attack survives/g)).toHaveLength(1);
    expect(twice).toContain("peak 510 MiB");
    expect(twice.match(/## Body attack/g)).toHaveLength(1);
    expect(twice).toContain("second");
    expect(twice).not.toContain("first");
    expect(twice).toContain("proxy numbers");
  });
});

describe("alignTable", () => {
  it("pads every column to its widest cell and redraws the rule", () => {
    expect(alignTable(["| a | long cell |", "| --- | --- |", "| wide one | x |"])).toEqual([
      "| a        | long cell |",
      "| -------- | --------- |",
      "| wide one | x         |",
    ]);
  });
});
