import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// The routing engine must stay pure: no I/O, no clock reads, no randomness, no logging.
// This reads the engine's own sources, so a stray import or Date.now() fails the build.
const FORBIDDEN: readonly [RegExp, string][] = [
  [/from\s+["']node:/, "a Node.js built-in import"],
  [/from\s+["'](fs|http|https|net|child_process|os)["']/, "a Node.js built-in import"],
  [/Date\.now\(|new Date\(|performance\.now\(|process\.hrtime/, "a clock read"],
  [/Math\.random\(/, "randomness"],
  [/console\.|process\./, "logging or process access"],
  [/setTimeout\(|setInterval\(|fetch\(/, "timers or network"],
];

const engineFiles = readdirSync(new URL(".", import.meta.url)).filter(
  (file) => file.endsWith(".ts") && !file.endsWith(".test.ts") && !file.endsWith(".fixtures.ts"),
);

describe("routing purity", () => {
  it("has engine files to check", () => {
    expect(engineFiles).toContain("resolve.ts");
  });

  it.each(engineFiles)("%s does no I/O, reads no clock and logs nothing", (file) => {
    const source = readFileSync(new URL(file, import.meta.url), "utf8");
    for (const [pattern, what] of FORBIDDEN) {
      expect(pattern.test(source), `${file} contains ${what}`).toBe(false);
    }
  });
});
