import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  getLlama,
  type Llama,
  LlamaCompletion,
  LlamaLogLevel,
  type LlamaModel,
  readGgufFileInfo,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TINY_MODEL_CLI } from "../index.js";
import { buildTinyModel, TINY_MODEL_SHAPE, writeTinyModel } from "./tiny-model.js";

// The generated file against the real llama.cpp (node-llama-cpp's prebuilt CPU binary).

let dir: string;
let llama: Llama;
let chat: LlamaModel;
let embedding: LlamaModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tiny-gguf-"));
  await writeTinyModel(join(dir, "chat.gguf"), { seed: 1 });
  await writeTinyModel(join(dir, "embed.gguf"), { seed: 2, variant: "embedding" });
  llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  chat = await llama.loadModel({ modelPath: join(dir, "chat.gguf"), gpuLayers: 0 });
  embedding = await llama.loadModel({ modelPath: join(dir, "embed.gguf"), gpuLayers: 0 });
});

afterAll(async () => {
  await chat?.dispose();
  await embedding?.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("the tiny model", () => {
  it("is the same bytes for the same seed and different for another", () => {
    const a = buildTinyModel({ seed: 5 });
    expect(buildTinyModel({ seed: 5 }).equals(a)).toBe(true);
    expect(buildTinyModel({ seed: 6 }).equals(a)).toBe(false);
    expect(a.length).toBeLessThan(2 * 1024 * 1024);
  });

  it("refuses a seed that is not a 32-bit unsigned integer", () => {
    expect(() => buildTinyModel({ seed: -1 })).toThrow("seed must be an integer");
    expect(() => buildTinyModel({ seed: 1.5 })).toThrow("seed must be an integer");
  });

  it("reads back as a llama model with the shape it was built with", async () => {
    const info = await readGgufFileInfo(join(dir, "chat.gguf"));
    expect(info.metadata.general.architecture).toBe("llama");
    const hyper = info.metadata.llama as unknown as Record<string, number>;
    expect(hyper.block_count).toBe(TINY_MODEL_SHAPE.blockCount);
    expect(hyper.embedding_length).toBe(TINY_MODEL_SHAPE.embeddingLength);
    expect(info.tensorInfo?.length).toBe(3 + 9 * TINY_MODEL_SHAPE.blockCount);
    expect(chat.trainContextSize).toBe(TINY_MODEL_SHAPE.contextLength);
  });

  it.each([
    "Hello world",
    "the model is tiny, 42!",
    "  leading and  double spaces",
    "symbols ~`{}[]|\\^_ and\ttabs\nnewlines",
  ])("round-trips %j through tokenize and detokenize", (text) => {
    const tokens = chat.tokenize(text);
    expect(tokens.length).toBeGreaterThan(0);
    expect(chat.detokenize(tokens)).toBe(text);
  });

  it("merges common words into single pieces", () => {
    // "▁the" is one token, so "the" costs one token, not three.
    expect(chat.tokenize("the")).toHaveLength(1);
  });

  it("generates tokens", async () => {
    const context = await chat.createContext({ contextSize: 256, threads: 1 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      let generated = 0;
      const result = await completion.generateCompletionWithMeta("Hello", {
        maxTokens: 16,
        onToken: (tokens) => {
          generated += tokens.length;
        },
      });
      expect(generated).toBeGreaterThan(0);
      expect(result.metadata.stopReason === "maxTokens" || generated < 16).toBe(true);
    } finally {
      await context.dispose();
    }
  });

  it("runs greedy decoding to max tokens (tests that need a long generation rely on it)", async () => {
    const context = await chat.createContext({ contextSize: 1024, threads: 1 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const result = await completion.generateCompletionWithMeta("Never stop.", {
        maxTokens: 500,
        temperature: 0,
      });
      expect(result.metadata.stopReason).toBe("maxTokens");
    } finally {
      await context.dispose();
    }
  });

  it("has a chat template that renders a conversation", async () => {
    const info = await readGgufFileInfo(join(dir, "chat.gguf"));
    expect(info.metadata.tokenizer.chat_template).toContain("add_generation_prompt");
  });

  it("embeds with the embedding variant: finite, and different texts differ", async () => {
    const context = await embedding.createEmbeddingContext({ contextSize: 256, threads: 1 });
    try {
      const a = await context.getEmbeddingFor("hello world");
      const b = await context.getEmbeddingFor("a different text");
      expect(a.vector).toHaveLength(TINY_MODEL_SHAPE.embeddingLength);
      expect(a.vector.every(Number.isFinite)).toBe(true);
      expect(a.vector).not.toEqual(b.vector);
    } finally {
      await context.dispose();
    }
  });

  it("builds another shape on request, which llama.cpp loads and runs", async () => {
    const shape = {
      embeddingLength: 128,
      feedForwardLength: 256,
      blockCount: 3,
      headCount: 8,
      headCountKv: 4,
    };
    const path = join(dir, "wider.gguf");
    await writeTinyModel(path, { seed: 1, shape });
    const info = await readGgufFileInfo(path);
    expect(info.metadata.llama).toMatchObject({
      embedding_length: 128,
      feed_forward_length: 256,
      block_count: 3,
      attention: { head_count: 8, head_count_kv: 4 },
    });
    expect(info.tensorInfo?.length).toBe(3 + 9 * 3);
    const wider = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const context = await wider.createContext({ contextSize: 256, threads: 1 });
    try {
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const result = await completion.generateCompletionWithMeta("Hello", {
        maxTokens: 8,
        temperature: 0,
      });
      expect(result.metadata.stopReason).toBe("maxTokens");
    } finally {
      await context.dispose();
      await wider.dispose();
    }
  });

  it("keeps the default shape's bytes, and refuses a shape llama.cpp could not load", () => {
    expect(
      buildTinyModel({ seed: 4, shape: TINY_MODEL_SHAPE }).equals(buildTinyModel({ seed: 4 })),
    ).toBe(true);
    expect(() => buildTinyModel({ shape: { headCount: 3 } })).toThrow(
      "multiple of shape.headCount",
    );
    expect(() => buildTinyModel({ shape: { headCountKv: 3 } })).toThrow(
      "multiple of shape.headCountKv",
    );
    expect(() => buildTinyModel({ shape: { blockCount: 0 } })).toThrow("positive integer");
  });

  it("writes atomically: no partial file is left beside the model", async () => {
    const path = join(dir, "nested", "racing.gguf");
    await Promise.all([1, 2, 3].map(() => writeTinyModel(path, { seed: 9 })));
    expect((await readFile(path)).equals(buildTinyModel({ seed: 9 }))).toBe(true);
    expect(await readdir(join(dir, "nested"))).toEqual(["racing.gguf"]);
  });
});

describe("the CLI", () => {
  const run = promisify(execFile);

  it("writes the file it prints, the same as the function", async () => {
    const out = join(dir, "cli.gguf");
    const { stdout } = await run(process.execPath, [TINY_MODEL_CLI, "--out", out, "--seed", "3"]);
    expect(stdout.trim()).toBe(out);
    expect((await readFile(out)).equals(buildTinyModel({ seed: 3 }))).toBe(true);
  });

  it.each([
    [[], "--out is required"],
    [["--out", "x.gguf", "--seed=-2"], "--seed must be an integer"],
    [["--out", "x.gguf", "--variant", "vision"], '--variant must be "chat" or "embedding"'],
  ])("exits 2 on %j", async (argv, message) => {
    const failure = await run(process.execPath, [TINY_MODEL_CLI, ...argv], { cwd: dir }).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure).toMatchObject({ code: 2 });
    expect((failure as { stderr: string }).stderr).toContain(message);
  });
});
