import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CortexConfig } from "@cortex/protocol";
import { describe, expect, it } from "vitest";
import { neuronsDiff, restartKeys, watchFile } from "./config-watch.js";

const target = (name: string, url = `http://${name}:13131`, token = "", priority = 0) => ({
  name,
  url,
  token,
  priority,
});

describe("neuronsDiff", () => {
  it("names added, changed (URL, token, priority) and removed entries", () => {
    const diff = neuronsDiff(
      [target("a"), target("b"), target("c"), target("d"), target("e")],
      [
        target("a"),
        target("b", "http://other:1"),
        target("c", undefined, "new-token"),
        target("d", undefined, "", 3),
        target("f"),
      ],
    );
    expect(diff.added.map((entry) => entry.name)).toEqual(["f"]);
    expect(diff.changed.map((entry) => entry.name)).toEqual(["b", "c", "d"]);
    expect(diff.removed).toEqual(["e"]);
  });
});

describe("restartKeys", () => {
  it("lists the changed keys other than neurons", () => {
    const before = CortexConfig.parse({});
    const after = CortexConfig.parse({
      poll_interval_ms: 500,
      neurons: [target("a")],
      affinity: { load_factor: 2 },
    });
    expect(restartKeys(before, after)).toEqual(["poll_interval_ms", "affinity"]);
    expect(restartKeys(before, CortexConfig.parse({ neurons: [target("a")] }))).toEqual([]);
  });
});

describe("watchFile", () => {
  it("calls back once after a burst of writes, for its file only", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cortex-config-watch-"));
    const file = join(dir, "cortex.yaml");
    await writeFile(file, "a: 1\n");
    let calls = 0;
    const watch = watchFile(
      file,
      () => (calls += 1),
      () => {},
      50,
    );
    try {
      await writeFile(join(dir, "other.yaml"), "x\n");
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(calls).toBe(0);
      for (let i = 0; i < 3; i += 1) await writeFile(file, `a: ${i}\n`);
      await expect.poll(() => calls, { timeout: 2000 }).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(calls).toBe(1);
    } finally {
      watch.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
