import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type CatalogueEntries, type CatalogueProblem, loadCatalogueSnapshot } from "./load.js";
import { CatalogueError, type CatalogueWatcher, watchCatalogue } from "./watch.js";

type WatchEvent =
  | { readonly kind: "reload"; readonly ids: string[]; readonly files: string[] }
  | { readonly kind: "error"; readonly problems: CatalogueProblem[] };

/**
 * Records callbacks and lets a test await the first one that matches, so tests wait on
 * events instead of sleeping. Events before a match are skipped: an editor's save can
 * produce more than one reload, and tests assert on the state they wait for.
 */
class Recorder {
  readonly events: WatchEvent[] = [];
  private cursor = 0;
  private wake: (() => void) | undefined;

  readonly onReload = (catalogue: CatalogueEntries, files: string[]): void => {
    this.push({ kind: "reload", ids: catalogue.models.map((model) => model.id), files });
  };

  readonly onError = (problems: CatalogueProblem[]): void => {
    this.push({ kind: "error", problems });
  };

  async waitFor(
    what: string,
    matches: (event: WatchEvent) => boolean,
    timeoutMs = 5_000,
  ): Promise<WatchEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.events.length) {
        const event = this.events[this.cursor++] as WatchEvent;
        if (matches(event)) return event;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.events)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  reloadWith(ids: string[]): Promise<WatchEvent> {
    return this.waitFor(`a reload with ${ids.join(", ")}`, (event) => {
      return event.kind === "reload" && event.ids.join() === ids.join();
    });
  }

  error(): Promise<WatchEvent> {
    return this.waitFor("an error", (event) => event.kind === "error");
  }

  private push(event: WatchEvent): void {
    this.events.push(event);
    this.wake?.();
    this.wake = undefined;
  }
}

const model = (id: string, extra = ""): string =>
  `  - id: ${id}\n    harness: llamacpp\n    source: hf:org/${id}/model.gguf\n    vram_mb: 4000\n${extra}`;
const catalogueText = (...ids: string[]): string =>
  `models:\n${ids.map((id) => model(id)).join("")}`;

const ids = (watcher: CatalogueWatcher): string[] =>
  watcher.current().models.map((profile) => profile.id);

let dir: string;
const watchers: CatalogueWatcher[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "catalogue-watch-"));
});

afterEach(async () => {
  await Promise.all(watchers.splice(0).map((watcher) => watcher.close()));
  await rm(dir, { recursive: true, force: true });
});

const start = async (path: string, recorder: Recorder): Promise<CatalogueWatcher> => {
  const watcher = await watchCatalogue(path, {
    onReload: recorder.onReload,
    onError: recorder.onError,
    debounceMs: 30,
  });
  watchers.push(watcher);
  return watcher;
};

/** Replaces a file the way editors and config management do: a temporary, then a rename. */
const replaceAtomically = async (file: string, text: string): Promise<void> => {
  const temporary = join(dir, `.tmp-${process.hrtime.bigint()}`);
  await writeFile(temporary, text);
  await rename(temporary, file);
};

describe("watchCatalogue", () => {
  it.each([
    { mode: "directory", target: () => dir },
    { mode: "single file", target: () => join(dir, "models.yaml") },
  ])("reloads after an in-place edit ($mode)", async ({ target }) => {
    const file = join(dir, "models.yaml");
    await writeFile(file, catalogueText("model-a"));
    const recorder = new Recorder();
    const watcher = await start(target(), recorder);
    expect(ids(watcher)).toEqual(["model-a"]);

    await writeFile(file, catalogueText("model-a", "model-b"));
    const event = await recorder.reloadWith(["model-a", "model-b"]);
    expect(event).toMatchObject({ files: [file] });
    expect(ids(watcher)).toEqual(["model-a", "model-b"]);
    expect(recorder.events.filter((seen) => seen.kind === "error")).toEqual([]);
  });

  it.each([
    { mode: "directory", target: () => dir },
    { mode: "single file", target: () => join(dir, "models.yaml") },
  ])("picks up an atomic replace by rename ($mode)", async ({ target }) => {
    const file = join(dir, "models.yaml");
    await writeFile(file, catalogueText("model-a"));
    const recorder = new Recorder();
    const watcher = await start(target(), recorder);

    await replaceAtomically(file, catalogueText("model-c"));
    await recorder.reloadWith(["model-c"]);
    // The watch survives the replace: a second one is seen too.
    await replaceAtomically(file, catalogueText("model-d"));
    await recorder.reloadWith(["model-d"]);
    expect(ids(watcher)).toEqual(["model-d"]);
  });

  it("keeps the last good catalogue on an invalid edit and recovers on a valid one", async () => {
    const file = join(dir, "models.yaml");
    await writeFile(file, catalogueText("model-a"));
    const recorder = new Recorder();
    const watcher = await start(dir, recorder);

    await replaceAtomically(file, `models:\n${model("model-a", "    vram_mb_typo: 1\n")}`);
    const error = await recorder.error();
    expect(error).toEqual({
      kind: "error",
      problems: [{ file, path: "models[0].vram_mb_typo", message: 'unknown key "vram_mb_typo"' }],
    });
    expect(ids(watcher)).toEqual(["model-a"]);

    await replaceAtomically(file, catalogueText("model-a", "model-b"));
    await recorder.reloadWith(["model-a", "model-b"]);
    expect(ids(watcher)).toEqual(["model-a", "model-b"]);
  });

  it("sees files added to and removed from a directory", async () => {
    await writeFile(join(dir, "a.yaml"), catalogueText("model-a"));
    const recorder = new Recorder();
    const watcher = await start(dir, recorder);

    const extra = join(dir, "b.yml");
    await replaceAtomically(extra, catalogueText("model-b"));
    await recorder.reloadWith(["model-a", "model-b"]);

    await rm(extra);
    await recorder.reloadWith(["model-a"]);
    expect(ids(watcher)).toEqual(["model-a"]);
  });

  it("reports a cross-file conflict introduced by a new file", async () => {
    await writeFile(join(dir, "a.yaml"), catalogueText("model-a"));
    const recorder = new Recorder();
    const watcher = await start(dir, recorder);

    const duplicate = join(dir, "b.yaml");
    await replaceAtomically(duplicate, catalogueText("model-a"));
    const error = await recorder.error();
    expect(error).toMatchObject({ problems: [{ file: duplicate, path: "models[0].id" }] });
    expect(ids(watcher)).toEqual(["model-a"]);
  });

  it("ends at the last content after a burst of writes", async () => {
    const file = join(dir, "models.yaml");
    await writeFile(file, catalogueText("model-0"));
    const recorder = new Recorder();
    const watcher = await start(file, recorder);

    for (let index = 1; index <= 5; index++) {
      await replaceAtomically(file, catalogueText(`model-${index}`));
    }
    await recorder.reloadWith(["model-5"]);
    expect(ids(watcher)).toEqual(["model-5"]);
  });

  it("never overlaps reloads, and reloads again for a change made during one", async () => {
    const file = join(dir, "models.yaml");
    await writeFile(file, catalogueText("model-a"));
    let active = 0;
    let mostActive = 0;
    let holdNext = false;
    let release = (): void => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let markEntered = (): void => {};
    const entered = new Promise<void>((resolve) => {
      markEntered = resolve;
    });
    // The real loader, with one reload held open after it has read the files.
    const load = async (path: string) => {
      active++;
      mostActive = Math.max(mostActive, active);
      try {
        const snapshot = await loadCatalogueSnapshot(path);
        if (holdNext) {
          holdNext = false;
          markEntered();
          await held;
        }
        return snapshot;
      } finally {
        active--;
      }
    };
    const recorder = new Recorder();
    const watcher = await watchCatalogue(file, { ...recorder, debounceMs: 30, load });
    watchers.push(watcher);

    holdNext = true;
    await replaceAtomically(file, catalogueText("model-b"));
    await entered;
    await replaceAtomically(file, catalogueText("model-c"));
    // Nothing can be awaited here: the point is that no second load starts while the first
    // is held, so give the change's debounce (30 ms) ample time to fire before releasing.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(active).toBe(1);
    release();

    await recorder.reloadWith(["model-c"]);
    expect(mostActive).toBe(1);
    expect(ids(watcher)).toEqual(["model-c"]);
  });

  it("fails to start on an invalid catalogue, listing every problem", async () => {
    const file = join(dir, "models.yaml");
    await writeFile(file, `models:\n${model("model-a", "    min_devices: 0\n    colour: red\n")}`);
    const recorder = new Recorder();
    const started = watchCatalogue(dir, { ...recorder, debounceMs: 30 });
    await expect(started).rejects.toBeInstanceOf(CatalogueError);
    await expect(started).rejects.toThrow(`${file}: models[0].min_devices: must be at least 1`);
    await expect(started).rejects.toThrow(`${file}: models[0].colour: unknown key "colour"`);
    const error = await started.catch((caught: unknown) => caught);
    expect((error as CatalogueError).problems).toHaveLength(2);
  });

  it("fails to start on a missing path", async () => {
    const missing = join(dir, "missing");
    const recorder = new Recorder();
    await expect(
      watchCatalogue(missing, { onReload: recorder.onReload, onError: recorder.onError }),
    ).rejects.toThrow(`${missing}: no such file or directory`);
  });

  it("makes no callbacks after close()", async () => {
    const file = join(dir, "models.yaml");
    await writeFile(file, catalogueText("model-a"));
    const closedRecorder = new Recorder();
    const closed = await start(dir, closedRecorder);
    // A second watcher on the same directory is the witness that the edit was delivered and
    // debounced, so the test does not have to guess how long to wait for nothing to happen.
    const witness = new Recorder();
    await start(dir, witness);

    await closed.close();
    await writeFile(file, catalogueText("model-b"));
    await witness.reloadWith(["model-b"]);
    await replaceAtomically(file, "models: [");
    await witness.error();

    expect(closedRecorder.events).toEqual([]);
    expect(ids(closed)).toEqual(["model-a"]);
  });
});
