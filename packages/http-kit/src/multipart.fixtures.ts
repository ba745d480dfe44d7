// Multipart/form-data bodies for tests, built the way clients send them (CRLF lines, a closing
// boundary), so a test names only what it is about.

export interface FormPart {
  readonly name: string;
  readonly value: string | Buffer;
  readonly filename?: string;
  readonly type?: string;
}

/** A multipart/form-data body of `parts`, split by `boundary`. */
export const formBody = (boundary: string, parts: readonly FormPart[]): Buffer => {
  const pieces: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.name}"${
      part.filename === undefined ? "" : `; filename="${part.filename}"`
    }`;
    const type = part.type === undefined ? "" : `Content-Type: ${part.type}\r\n`;
    pieces.push(
      Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`, "latin1"),
      typeof part.value === "string" ? Buffer.from(part.value, "utf8") : part.value,
      Buffer.from("\r\n", "latin1"),
    );
  }
  pieces.push(Buffer.from(`--${boundary}--\r\n`, "latin1"));
  return Buffer.concat(pieces);
};

/** Bytes no boundary can be found in: a stand-in for an audio file. */
export const fileBytes = (size: number): Buffer => {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i += 1) bytes[i] = (i * 7) % 251;
  return bytes;
};
