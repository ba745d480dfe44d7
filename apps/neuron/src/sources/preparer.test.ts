import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NeuronError } from "../errors.js";
import { type LocalSources, localSources } from "./preparer.js";

// Local sources against a real temporary directory; nothing here touches the network (a refused
// download source fails before any request, and no server listens for the others).

let dir: string;
let models: string;
let outside: string;
let sources: LocalSources;
const ignore = () => {};

const refusal = (code: string, message: RegExp) =>
  expect.objectContaining({
    name: "NeuronError",
    code,
    param: "source",
    message: expect.stringMatching(message),
  });

beforeEach(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), "neuron-sources-")));
  models = join(dir, "models");
  outside = join(dir, "outside");
  await mkdir(models);
  await mkdir(outside);
  sources = localSources({ modelsDir: models, hfEndpoint: "https://huggingface.co" });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("check", () => {
  it.each(["qwen.gguf", "hf:o/r", "hf:o/r/f.gguf", "https://example.com/f.gguf"])(
    "accepts %s without touching the disk",
    (source) => {
      expect(() => sources.check(source)).not.toThrow();
    },
  );

  it.each(["../x", "/etc/passwd", "file:///etc/passwd", "ftp://h/x", "http://example.com/x"])(
    "refuses %s with invalid_request_error on param source",
    (source) => {
      let thrown: unknown;
      try {
        sources.check(source);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(NeuronError);
      expect(thrown).toMatchObject({ code: "invalid_request_error", param: "source" });
    },
  );

  it("refuses an hf_endpoint that is not an http(s) URL", () => {
    expect(() => localSources({ modelsDir: models, hfEndpoint: "ftp://x" })).toThrow(/hf_endpoint/);
    expect(() => localSources({ modelsDir: models, hfEndpoint: "nonsense" })).toThrow(
      /hf_endpoint/,
    );
  });
});

describe("prepare: local files", () => {
  it("returns a file under models_dir by relative, absolute and file:// source", async () => {
    await mkdir(join(models, "sub"));
    await writeFile(join(models, "sub", "m.gguf"), "gguf");
    const path = join(models, "sub", "m.gguf");
    await expect(sources.prepare("sub/m.gguf", ignore)).resolves.toBe(path);
    await expect(sources.prepare(path, ignore)).resolves.toBe(path);
    await expect(sources.prepare(`file://${path}`, ignore)).resolves.toBe(path);
  });

  it("follows a symlink that stays inside models_dir", async () => {
    await writeFile(join(models, "real.gguf"), "gguf");
    await symlink(join(models, "real.gguf"), join(models, "link.gguf"));
    await expect(sources.prepare("link.gguf", ignore)).resolves.toBe(join(models, "real.gguf"));
  });

  it("refuses a symlink that points outside models_dir", async () => {
    await writeFile(join(outside, "secret"), "secret");
    await symlink(join(outside, "secret"), join(models, "escape.gguf"));
    await expect(sources.prepare("escape.gguf", ignore)).rejects.toEqual(
      refusal("invalid_request_error", /outside models_dir/),
    );
  });

  it("refuses a symlinked directory that leads outside models_dir", async () => {
    await writeFile(join(outside, "m.gguf"), "gguf");
    await symlink(outside, join(models, "dir"));
    await expect(sources.prepare("dir/m.gguf", ignore)).rejects.toEqual(
      refusal("invalid_request_error", /outside models_dir/),
    );
  });

  it("says which file is missing and what to fix", async () => {
    await expect(sources.prepare("missing.gguf", ignore)).rejects.toEqual(
      refusal("load_failed", /model file .*missing\.gguf does not exist; put the model there/),
    );
  });

  it("refuses the bad sources at prepare time too, before touching anything", async () => {
    await expect(sources.prepare("../x", ignore)).rejects.toEqual(
      refusal("invalid_request_error", /\.\. segment/),
    );
  });

  it("passes hf:owner/repo through unchanged", async () => {
    await expect(sources.prepare("hf:Qwen/Qwen3-8B", ignore)).resolves.toBe("Qwen/Qwen3-8B");
  });

  it("refuses to download through a symlinked downloads folder that leads outside", async () => {
    await symlink(outside, join(models, "downloads"));
    await expect(sources.prepare("https://example.invalid/m.gguf", ignore)).rejects.toEqual(
      refusal("invalid_request_error", /outside models_dir/),
    );
  });

  it("rejects at once when the caller already gave up", async () => {
    await writeFile(join(models, "m.gguf"), "gguf");
    const controller = new AbortController();
    controller.abort();
    await expect(sources.prepare("m.gguf", ignore, controller.signal)).rejects.toMatchObject({
      name: "AbortError",
    });
  });
});
