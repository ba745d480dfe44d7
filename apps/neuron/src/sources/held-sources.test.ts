import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import type { HeldSources } from "@cortex/protocol";
import { sourceFile } from "@cortex/routing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  DEFAULT_SCAN_LIMITS,
  HeldSourcesCache,
  type ScanLimits,
  scanHeldSources,
} from "./held-sources.js";
import { parseSource } from "./parse-source.js";

// The scan against a real temporary models_dir; the cache with a fake scan and fake timers.

let dir: string;
let models: string;

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-held-")));
  models = join(dir, "models");
  await mkdir(models);
});

afterEach(async () => {
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

const put = async (path: string, bytes = 3) => {
  const full = join(models, path);
  await mkdir(dirname(full), { recursive: true });
  await writeFile(full, Buffer.alloc(bytes));
};

const limits = (fields: Partial<ScanLimits>): ScanLimits => ({ ...DEFAULT_SCAN_LIMITS, ...fields });

describe("scanHeldSources", () => {
  it("lists complete files by path relative to models_dir, sorted, with their sizes", async () => {
    await put("b.gguf", 5);
    await put("hf/o/r/main/f.gguf", 7);
    await put("downloads/127.0.0.1_8080/m.gguf", 2);
    await put("llama/config.json", 1);
    expect(await scanHeldSources(models)).toEqual({
      models_dir: models,
      files: [
        { path: "b.gguf", size_bytes: 5 },
        { path: "downloads/127.0.0.1_8080/m.gguf", size_bytes: 2 },
        { path: "hf/o/r/main/f.gguf", size_bytes: 7 },
        { path: "llama/config.json", size_bytes: 1 },
      ],
      complete: true,
    });
  });

  it("leaves out a download still in progress", async () => {
    await put("hf/o/r/main/f.gguf.partial", 100);
    expect((await scanHeldSources(models)).files).toEqual([]);
  });

  it("lists a symlink to a file inside models_dir, never one leading out", async () => {
    await put("real.gguf", 4);
    await writeFile(join(dir, "secret.gguf"), "x");
    await symlink(join(models, "real.gguf"), join(models, "alias.gguf"));
    await symlink(join(dir, "secret.gguf"), join(models, "out.gguf"));
    await symlink(join(models, "gone.gguf"), join(models, "dangling.gguf"));
    const scan = await scanHeldSources(models);
    expect(scan.files.map((file) => file.path)).toEqual(["alias.gguf", "real.gguf"]);
    expect(scan.complete).toBe(true);
  });

  it("does not follow a symlinked folder, and says the list is incomplete", async () => {
    await put("shared/a.gguf");
    await symlink(join(models, "shared"), join(models, "loop"));
    const scan = await scanHeldSources(models);
    expect(scan.files.map((file) => file.path)).toEqual(["shared/a.gguf"]);
    expect(scan.complete).toBe(false);
  });

  it("holds nothing, and knows it, when models_dir does not exist yet", async () => {
    expect(await scanHeldSources(join(dir, "none"))).toEqual({
      models_dir: join(dir, "none"),
      files: [],
      complete: true,
    });
  });

  it.each([
    ["files", limits({ maxFiles: 2 }), 2],
    ["depth", limits({ maxDepth: 2 }), 2],
    ["entries", limits({ maxEntries: 3 }), 2],
  ])("stops at its bound on %s and says the list is incomplete", async (_, bound, listed) => {
    await put("a.gguf");
    await put("b.gguf");
    await put("deep/er/c.gguf");
    const scan = await scanHeldSources(models, bound);
    expect(scan.files.length).toBeLessThanOrEqual(listed);
    expect(scan.complete).toBe(false);
  });

  it("stops when its time is up", async () => {
    await put("a.gguf");
    let t = 0;
    const scan = await scanHeldSources(models, limits({ budgetMs: 10 }), () => (t += 100));
    expect(scan).toMatchObject({ files: [], complete: false });
  });
});

describe("cortex's reading of a source agrees with the neuron's", () => {
  // packages/routing maps catalogue sources to files to place cold loads: the same file the
  // neuron's own parser picks, or cortex would look for weights where the neuron never puts them.
  it.each([
    "qwen.gguf",
    "./team//qwen.gguf",
    "team/llama-3-8b/",
    "model:v1.gguf",
    "weird name.gguf",
    "hf:owner/repo/file.gguf",
    "hf:owner/repo@v1.2/sub/dir/file.gguf",
    "https://cdn.example.com/models/q4.gguf?X-Amz-Signature=abc#frag",
    "https://Example.COM:8443/a%20b/c+d.gguf",
    "http://127.0.0.1:8080/model.bin",
    "http://localhost/x.gguf",
  ])("%s", (source) => {
    const parsed = parseSource(source, { modelsDir: models, hfEndpoint: "https://huggingface.co" });
    const file = sourceFile(source, models);
    if (parsed.kind === "local")
      expect(file).toEqual({
        kind: "path",
        key: relative(models, parsed.path).split(sep).join("/"),
      });
    else if (parsed.kind === "download")
      expect(file).toEqual({
        kind: "download",
        key: relative(models, parsed.target).split(sep).join("/"),
      });
    else throw new Error(`${source} was expected to parse, got ${parsed.kind}`);
  });

  it.each([
    (root: string) => `${root}/team/qwen.gguf`,
    (root: string) => `file://${root}/team/a%20b.gguf`,
  ])("an absolute source inside models_dir (%#)", (build) => {
    const source = build(models);
    const parsed = parseSource(source, { modelsDir: models, hfEndpoint: "https://huggingface.co" });
    expect(parsed.kind).toBe("local");
    const path = parsed.kind === "local" ? parsed.path : "";
    expect(sourceFile(source, models)).toEqual({ kind: "path", key: relative(models, path) });
  });

  it.each(["hf:owner/repo", "../x.gguf", "/etc/passwd", "ftp://h/x"])(
    "%s names no file for either",
    (source) => {
      const parsed = parseSource(source, { modelsDir: models, hfEndpoint: "https://x" });
      expect(["passthrough", "reject"]).toContain(parsed.kind);
      expect(sourceFile(source, models)).toBeNull();
    },
  );
});

describe("HeldSourcesCache", () => {
  const answer = (...paths: string[]): HeldSources => ({
    models_dir: "/m",
    files: paths.map((path) => ({ path, size_bytes: 1 })),
    complete: true,
  });

  /** A scan that waits for the test to finish it. */
  const controlled = () => {
    const pending: ((value: HeldSources) => void)[] = [];
    const failures: ((error: Error) => void)[] = [];
    const scan = vi.fn(
      () =>
        new Promise<HeldSources>((resolve, reject) => {
          pending.push(resolve);
          failures.push(reject);
        }),
    );
    return {
      scan,
      finish: (value: HeldSources) => {
        failures.shift();
        pending.shift()?.(value);
      },
      fail: (error: Error) => {
        pending.shift();
        failures.shift()?.(error);
      },
    };
  };

  it("says nothing is known before the first scan, then serves the last one", async () => {
    const fake = controlled();
    const cache = new HeldSourcesCache({ modelsDir: "/m", refreshMs: 60_000, scan: fake.scan });
    expect(cache.current()).toEqual({ models_dir: "/m", files: [], complete: false });
    const started = cache.start();
    fake.finish(answer("a.gguf"));
    await started;
    expect(cache.current()).toEqual(answer("a.gguf"));
    cache.stop();
  });

  it("rescans once after the scan under way when refreshed during it", async () => {
    const fake = controlled();
    const cache = new HeldSourcesCache({ modelsDir: "/m", refreshMs: 60_000, scan: fake.scan });
    const started = cache.start();
    const first = cache.refresh();
    const second = cache.refresh();
    fake.finish(answer("a.gguf"));
    await vi.waitFor(() => expect(fake.scan).toHaveBeenCalledTimes(2));
    fake.finish(answer("a.gguf", "b.gguf"));
    await Promise.all([started, first, second]);
    expect(fake.scan).toHaveBeenCalledTimes(2);
    expect(cache.current().files).toHaveLength(2);
    cache.stop();
  });

  it("rescans on its timer, and stops", async () => {
    vi.useFakeTimers();
    const scan = vi.fn(async () => answer("a.gguf"));
    const cache = new HeldSourcesCache({ modelsDir: "/m", refreshMs: 1000, scan });
    await cache.start();
    expect(scan).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(scan).toHaveBeenCalledTimes(2);
    cache.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(scan).toHaveBeenCalledTimes(2);
  });

  it("keeps the last good list when a scan fails, and warns once per run of failures", async () => {
    const fake = controlled();
    const warnings: string[] = [];
    const cache = new HeldSourcesCache({
      modelsDir: "/m",
      refreshMs: 60_000,
      scan: fake.scan,
      onWarning: (message) => warnings.push(message),
    });
    const started = cache.start();
    fake.finish(answer("a.gguf"));
    await started;
    for (let i = 0; i < 2; i += 1) {
      const again = cache.refresh();
      fake.fail(new Error("EIO"));
      await again;
    }
    expect(cache.current()).toEqual(answer("a.gguf"));
    expect(warnings).toEqual(["scanning models_dir for held sources failed: EIO"]);
    cache.stop();
  });
});
