import { endianness } from "node:os";

// A GGUF (version 3) encoder: just enough of the format to write a model llama.cpp loads.
// Layout: header, metadata key/values, tensor infos, padding, then the tensor data with every
// tensor aligned to `general.alignment` (32 unless the metadata says otherwise).

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** A metadata value with the GGUF type it is written as (JavaScript numbers carry no type). */
export type GgufValue =
  | { readonly type: "uint32"; readonly value: number }
  | { readonly type: "int32"; readonly value: number }
  | { readonly type: "float32"; readonly value: number }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "string[]"; readonly value: readonly string[] }
  | { readonly type: "float32[]"; readonly value: readonly number[] }
  | { readonly type: "int32[]"; readonly value: readonly number[] };

/** An F32 tensor. `dims` is in GGUF order: the first dimension varies fastest. */
export interface GgufTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

// GGUF value type ids (gguf_type in ggml).
const TYPE_UINT32 = 4;
const TYPE_INT32 = 5;
const TYPE_FLOAT32 = 6;
const TYPE_BOOL = 7;
const TYPE_STRING = 8;
const TYPE_ARRAY = 9;
// ggml tensor type id of F32.
const GGML_TYPE_F32 = 0;

/** Appends little-endian values to a growing list of chunks. */
class ByteSink {
  readonly #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  bytes(buffer: Buffer): void {
    this.#chunks.push(buffer);
    this.#length += buffer.length;
  }

  u32(value: number): void {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32LE(value);
    this.bytes(buffer);
  }

  i32(value: number): void {
    const buffer = Buffer.alloc(4);
    buffer.writeInt32LE(value);
    this.bytes(buffer);
  }

  u64(value: number): void {
    const buffer = Buffer.alloc(8);
    buffer.writeBigUInt64LE(BigInt(value));
    this.bytes(buffer);
  }

  f32(value: number): void {
    const buffer = Buffer.alloc(4);
    buffer.writeFloatLE(value);
    this.bytes(buffer);
  }

  string(value: string): void {
    const encoded = Buffer.from(value, "utf8");
    this.u64(encoded.length);
    this.bytes(encoded);
  }

  padTo(alignment: number): void {
    const rest = this.#length % alignment;
    if (rest !== 0) this.bytes(Buffer.alloc(alignment - rest));
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.#chunks, this.#length);
  }
}

const writeValue = (sink: ByteSink, value: GgufValue): void => {
  switch (value.type) {
    case "uint32":
      sink.u32(TYPE_UINT32);
      sink.u32(value.value);
      return;
    case "int32":
      sink.u32(TYPE_INT32);
      sink.i32(value.value);
      return;
    case "float32":
      sink.u32(TYPE_FLOAT32);
      sink.f32(value.value);
      return;
    case "bool":
      sink.u32(TYPE_BOOL);
      sink.bytes(Buffer.from([value.value ? 1 : 0]));
      return;
    case "string":
      sink.u32(TYPE_STRING);
      sink.string(value.value);
      return;
    case "string[]":
      sink.u32(TYPE_ARRAY);
      sink.u32(TYPE_STRING);
      sink.u64(value.value.length);
      for (const item of value.value) sink.string(item);
      return;
    case "float32[]":
      sink.u32(TYPE_ARRAY);
      sink.u32(TYPE_FLOAT32);
      sink.u64(value.value.length);
      for (const item of value.value) sink.f32(item);
      return;
    case "int32[]":
      sink.u32(TYPE_ARRAY);
      sink.u32(TYPE_INT32);
      sink.u64(value.value.length);
      for (const item of value.value) sink.i32(item);
      return;
  }
};

const alignUp = (offset: number, alignment: number): number =>
  Math.ceil(offset / alignment) * alignment;

/**
 * Encodes a whole GGUF file. Throws when a tensor's data does not match its dimensions or a
 * name repeats, because llama.cpp would refuse such a file with a far less helpful message.
 */
export const encodeGguf = (
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
): Buffer => {
  const alignmentValue = metadata.get("general.alignment");
  const alignment =
    alignmentValue?.type === "uint32" ? alignmentValue.value : GGUF_DEFAULT_ALIGNMENT;
  const names = new Set<string>();
  for (const tensor of tensors) {
    if (names.has(tensor.name)) throw new Error(`tensor "${tensor.name}" appears twice`);
    names.add(tensor.name);
    const elements = tensor.dims.reduce((product, dim) => product * dim, 1);
    if (elements !== tensor.data.length) {
      throw new Error(
        `tensor "${tensor.name}" has ${tensor.data.length} values for dims [${tensor.dims.join(", ")}]`,
      );
    }
  }

  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(tensors.length);
  sink.u64(metadata.size);
  for (const [key, value] of metadata) {
    sink.string(key);
    writeValue(sink, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const tensor of tensors) {
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const dim of tensor.dims) sink.u64(dim);
    sink.u32(GGML_TYPE_F32);
    offset = alignUp(offset, alignment);
    offsets.push(offset);
    sink.u64(offset);
    offset += tensor.data.byteLength;
  }
  sink.padTo(alignment);
  const dataStart = sink.length;
  for (const [index, tensor] of tensors.entries()) {
    const target = dataStart + (offsets[index] ?? 0);
    if (target > sink.length) sink.bytes(Buffer.alloc(target - sink.length));
    const bytes = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    // Float32Array is host-endian; GGUF is little-endian. Swap on the rare big-endian host.
    sink.bytes(endianness() === "LE" ? Buffer.from(bytes) : Buffer.from(bytes).swap32());
  }
  return sink.toBuffer();
};
