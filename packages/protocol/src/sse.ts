// A server-sent events parser over decoded text chunks, as the SSE spec reads them: `data:`
// lines are joined, `event:` names the message (`message` when absent), `id:` is remembered for
// Last-Event-ID, a blank line ends a message and `:` lines are comments (cortex's keep-alives).
// A line ends at LF, CRLF or CR, however the text is cut. Pure and dependency-free, so cortex
// (a neuron's streamed loads), cortexctl and the dashboard (the browser) read streams with the
// same code.

export type SseMessage =
  | {
      readonly kind: "message";
      readonly event: string;
      readonly id: string | null;
      readonly data: string;
    }
  | { readonly kind: "comment"; readonly text: string };

export interface SseParser {
  /** Feeds one decoded chunk; answers the messages it completed. */
  push(chunk: string): SseMessage[];
}

const LF = 10;
const CR = 13;

export const createSseParser = (): SseParser => {
  let buffer = "";
  let data: string[] = [];
  let event = "";
  let id: string | null = null;
  /** The last chunk ended on CR: an LF starting the next one belongs to that line end. */
  let skipLf = false;

  const line = (text: string, out: SseMessage[]): void => {
    if (text === "") {
      if (data.length > 0)
        out.push({ kind: "message", event: event || "message", id, data: data.join("\n") });
      data = [];
      event = "";
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
    else if (field === "event") event = value;
    // The spec ignores an id containing NUL; cortex never sends one.
    else if (field === "id" && !value.includes("\0")) id = value;
    // `retry:` carries nothing cortex uses.
  };

  return {
    push(chunk) {
      const out: SseMessage[] = [];
      if (chunk === "") return out;
      const text = buffer + chunk;
      let start = 0;
      if (skipLf && text.charCodeAt(0) === LF) start = 1;
      skipLf = false;
      for (let i = start; i < text.length; i += 1) {
        const char = text.charCodeAt(i);
        if (char !== LF && char !== CR) continue;
        line(text.slice(start, i), out);
        if (char === CR) {
          if (i + 1 === text.length) skipLf = true;
          else if (text.charCodeAt(i + 1) === LF) i += 1;
        }
        start = i + 1;
      }
      buffer = text.slice(start);
      return out;
    },
  };
};
