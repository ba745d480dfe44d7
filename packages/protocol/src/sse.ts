// A server-sent events parser over decoded text chunks, as the SSE spec reads them: `data:`
// lines are joined, `id:` is remembered for Last-Event-ID, a blank line ends a message and `:`
// lines are comments (cortex's keep-alives). Pure and dependency-free, so cortexctl (Node) and the
// dashboard (the browser) read cortex's streams with the same code.

export type SseMessage =
  | { readonly kind: "message"; readonly id: string | null; readonly data: string }
  | { readonly kind: "comment"; readonly text: string };

export interface SseParser {
  /** Feeds one decoded chunk; answers the messages it completed. */
  push(chunk: string): SseMessage[];
}

export const createSseParser = (): SseParser => {
  let buffer = "";
  let data: string[] = [];
  let id: string | null = null;

  const line = (text: string, out: SseMessage[]): void => {
    if (text === "") {
      if (data.length > 0) out.push({ kind: "message", id, data: data.join("\n") });
      data = [];
      return;
    }
    if (text.startsWith(":")) {
      out.push({ kind: "comment", text: text.slice(1).trim() });
      return;
    }
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    // The spec ignores an id containing NUL; cortex never sends one.
    else if (field === "id" && !value.includes("\0")) id = value;
    // `event:` and `retry:` carry nothing cortex uses.
  };

  return {
    push(chunk) {
      buffer += chunk;
      const out: SseMessage[] = [];
      for (;;) {
        const match = /\r\n|\r|\n/.exec(buffer);
        // A lone `\r` at the end may be the first half of `\r\n`: wait for the next chunk.
        if (!match || (match[0] === "\r" && match.index === buffer.length - 1)) break;
        line(buffer.slice(0, match.index), out);
        buffer = buffer.slice(match.index + match[0].length);
      }
      return out;
    },
  };
};
