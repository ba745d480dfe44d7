/**
 * The last `maxBytes` of a process's output. Old text is dropped from the front, so a chatty
 * harness can run for months without the neuron's memory growing.
 */
export class RingBuffer {
  readonly #maxBytes: number;
  #chunks: string[] = [];
  #bytes = 0;
  #dropped = 0;

  constructor(maxBytes = 256 * 1024) {
    this.#maxBytes = maxBytes;
  }

  write(chunk: string): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes > this.#maxBytes && this.#chunks.length > 1) {
      const first = this.#chunks.shift() ?? "";
      this.#bytes -= first.length;
      this.#dropped += first.length;
    }
    if (this.#bytes > this.#maxBytes) {
      const only = this.#chunks[0] ?? "";
      const cut = only.length - this.#maxBytes;
      this.#chunks = [only.slice(cut)];
      this.#bytes = this.#maxBytes;
      this.#dropped += cut;
    }
  }

  /** Everything kept, prefixed by a note when older output was dropped. */
  text(): string {
    const body = this.#chunks.join("");
    return this.#dropped > 0 ? `[… ${this.#dropped} earlier characters dropped …]\n${body}` : body;
  }

  /** The last `lines` lines, for error messages. */
  tail(lines = 20): string {
    return this.#chunks
      .join("")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .slice(-lines)
      .join("\n");
  }
}
