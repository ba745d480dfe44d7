import type { BenchResult, Budget } from "./support.js";

// BENCHMARKS.md after a run of some benchmarks only (`--only`): their budget rows and sections
// replace the ones they wrote before, everything the other benchmarks wrote stays as it was, and
// the header says what was rerun when. Pure, so a partial run never loses the others' numbers.

/** A Markdown table with every column padded to its widest cell. */
export const alignTable = (lines: readonly string[]): string[] => {
  const rows = lines.map((line) =>
    line
      .trim()
      .replace(/^\|/, "")
      .replace(/\|$/, "")
      .split("|")
      .map((cell) => cell.trim()),
  );
  const isRule = (row: readonly string[]) => row.every((cell) => /^:?-+:?$/.test(cell));
  const width = (cell: string) => [...cell].length;
  const columns = Math.max(...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, i) =>
    Math.max(3, ...rows.filter((row) => !isRule(row)).map((row) => width(row[i] ?? ""))),
  );
  return rows.map((row) =>
    isRule(row)
      ? `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`
      : `| ${widths.map((w, i) => (row[i] ?? "").padEnd(w + (row[i] ?? "").length - width(row[i] ?? ""))).join(" | ")} |`,
  );
};

/** `text` with every Markdown table aligned. */
const alignTables = (text: string): string => {
  const lines = text.split("\n");
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    if (!lines[i]?.startsWith("|")) {
      out.push(lines[i] ?? "");
      i += 1;
      continue;
    }
    let end = i;
    while (lines[end]?.startsWith("|")) end += 1;
    out.push(...alignTable(lines.slice(i, end)));
    i = end;
  }
  return out.join("\n");
};

/** One row of the budget table. */
export const budgetRow = (b: Budget): string =>
  `| ${b.budget} | ${b.measured} | ${b.pass ? "PASS" : "MISS"} |`;

const budgetCell = (row: string): string =>
  row.trim().replace(/^\|/, "").split("|")[0]?.trim() ?? "";

export interface PartialRun {
  readonly date: string;
  readonly command: string;
  readonly durationS: number;
}

/**
 * `existing` BENCHMARKS.md with the budget rows and sections of `results` replaced (or added:
 * rows at the end of the budget table, sections before "Failures" or at the end), and one
 * header line per rerun benchmark.
 */
export const spliceBenchmarksMd = (
  existing: string,
  results: readonly BenchResult[],
  run: PartialRun,
): string => {
  let lines = existing.replace(/\n+$/, "").split("\n");

  // Header: "- <name> rerun alone: …", replacing an older one for the same benchmark.
  const budgetsAt = lines.indexOf("## Budgets");
  for (const r of results) {
    const note = `- ${r.name} rerun alone: ${run.date} (\`${run.command}\`), ${run.durationS} s`;
    const at = lines.findIndex((line) => line.startsWith(`- ${r.name} rerun alone:`));
    if (at >= 0) lines[at] = note;
    else {
      const headerEnd = budgetsAt < 0 ? lines.length : budgetsAt;
      let last = -1;
      for (let i = 0; i < headerEnd; i += 1) if (lines[i]?.startsWith("- ")) last = i;
      lines.splice(last < 0 ? headerEnd : last + 1, 0, note);
    }
  }

  // Budget table: rows of these budgets replaced, new ones appended.
  const newRows = results.flatMap((r) => r.budgets.map(budgetRow));
  const newBudgets = new Set(newRows.map(budgetCell));
  const heading = lines.indexOf("## Budgets");
  if (heading >= 0) {
    const start = lines.findIndex((line, i) => i > heading && line.startsWith("|"));
    let end = start;
    while (start >= 0 && lines[end]?.startsWith("|")) end += 1;
    if (start >= 0) {
      const [head = "", rule = "", ...rows] = lines.slice(start, end);
      const kept = rows.filter((row) => !newBudgets.has(budgetCell(row)));
      lines.splice(start, end - start, ...alignTable([head, rule, ...kept, ...newRows]));
    }
  }

  // Sections: "## <title>" up to the next "## " heading.
  for (const r of results) {
    const section = [`## ${r.title}`, "", ...alignTables(r.markdown).split("\n"), ""];
    const at = lines.indexOf(`## ${r.title}`);
    if (at >= 0) {
      let end = at + 1;
      while (end < lines.length && !lines[end]?.startsWith("## ")) end += 1;
      lines.splice(at, end - at, ...section);
    } else {
      const failures = lines.indexOf("## Failures");
      if (failures >= 0) lines.splice(failures, 0, ...section);
      else lines = [...lines, "", ...section];
    }
  }
  return `${lines
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .replace(/\n+$/, "")}\n`;
};
