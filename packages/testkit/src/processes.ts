import { readdirSync, readFileSync } from "node:fs";

// Process helpers for tests and benchmarks that start the built apps as real processes.

/** Live processes whose command line contains `text` (Linux /proc), as `{pid, cmdline}`. */
export const processesMentioning = (text: string): { pid: number; cmdline: string }[] => {
  const found: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ");
      const state = readFileSync(`/proc/${name}/stat`, "utf8").split(") ").at(1)?.[0];
      if (state !== "Z" && cmdline.includes(text)) found.push({ pid: Number(name), cmdline });
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
};

/** The environment a live process started with (Linux /proc), by variable name. */
export const environOf = (pid: number): Record<string, string> =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter((entry) => entry.includes("="))
      .map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]),
  );

/** Resolves when `check` holds, polling every 50 ms; rejects with `what` after `timeoutMs`. */
export const waitFor = async (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};
