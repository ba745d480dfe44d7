import { buildTinyModel } from "@cortex/harness-llamacpp";
import { describe, expect, it } from "vitest";
import { bufferReader } from "./estimate.fixtures.js";
import { readGgufHeader } from "./read-header.js";

// The header reader over bytes in memory: what it reads, and what it refuses.

describe("readGgufHeader", () => {
  it("reads a generated model's metadata and tensor infos, and the file's size", async () => {
    const bytes = buildTinyModel({ shape: { blockCount: 3 } });
    const { header, bytesRead } = await readGgufHeader(bufferReader(bytes));
    expect(header.metadata["general.architecture"]).toBe("llama");
    expect(header.metadata["llama.block_count"]).toBe(3);
    expect(header.tensors).toHaveLength(1 + 3 * 9 + 2);
    expect(header.tensors[0]).toEqual({
      name: "token_embd.weight",
      shape: [64n, expect.any(BigInt)],
      dtype: 0,
    });
    expect(header.fileSize).toBe(bytes.length);
    expect(header.dataOffset % 32).toBe(0);
    expect(bytesRead).toBe(bytes.length);
  });

  it("reads no more than the header's first 2 MB range of a larger file", async () => {
    const bytes = buildTinyModel({ shape: { embeddingLength: 256, blockCount: 8 } });
    expect(bytes.length).toBeGreaterThan(10_000_000);
    const { bytesRead } = await readGgufHeader(bufferReader(bytes));
    expect(bytesRead).toBe(2_000_000);
  });

  it.each([
    [
      "a file that is not GGUF",
      Buffer.from("PK\u0003\u0004 a zip archive, not a model".repeat(10)),
    ],
    ["an empty file", Buffer.alloc(0)],
  ])("refuses %s as not estimable", async (_, bytes) => {
    await expect(readGgufHeader(bufferReader(bytes))).rejects.toMatchObject({
      code: "not_estimable",
      param: "source",
      message: expect.stringMatching(/^it is not a readable GGUF file: /),
    });
  });

  it("refuses a file that ends inside its header", async () => {
    await expect(
      readGgufHeader(bufferReader(buildTinyModel().subarray(0, 4000))),
    ).rejects.toMatchObject({
      code: "not_estimable",
      message: expect.stringMatching(/^the file ends inside its GGUF header \(4000 bytes/),
    });
  });

  it("stops at its byte budget", async () => {
    const bytes = buildTinyModel({ shape: { embeddingLength: 256, blockCount: 8 } });
    await expect(readGgufHeader(bufferReader(bytes), 1000)).rejects.toMatchObject({
      code: "not_estimable",
      message: expect.stringMatching(/header is larger than 0\.001 MiB/),
    });
  });
});
