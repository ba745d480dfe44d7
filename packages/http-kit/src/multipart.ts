import { ApiError } from "./api-error.js";
import type { Span } from "./json-scan.js";

// A bounded reader of multipart/form-data bodies (RFC 7578 over RFC 2046's multipart syntax),
// for the uploads the inference path routes by model (`/v1/audio/transcriptions`, image edits).
// Like the JSON scanner it builds nothing: it walks a body already read under the body limit,
// finds each part's name in its headers, and returns where the wanted fields' values lie, so
// cortex can replace an alias in the `model` field without touching any other byte. A file part
// is skipped with one native search for the next boundary, never copied. Everything a client
// controls is bounded: the boundary (70 characters, RFC 2046), each part's headers (8 KiB), the
// number of parts (256). Anything malformed is 400: a body this reader refuses is one whose
// fields a harness might read differently.

/** The longest boundary RFC 2046 allows. */
export const MAX_BOUNDARY_LENGTH = 70;
/** The most bytes of headers one part may have (its blank line not counted). */
export const MAX_PART_HEADER_BYTES = 8192;
/** The most parts a form may have: a transcription sends about ten, an image edit a few dozen. */
export const MAX_PARTS = 256;

/** RFC 2046's `bchars`: what a boundary is made of (a space, but not at its end). */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]*[0-9A-Za-z'()+_,\-./:=?]$/;

const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const SPACE = 0x20;
const TAB = 0x09;
const CRLF_CRLF = Buffer.from("\r\n\r\n", "latin1");

const malformed = (why: string): ApiError =>
  new ApiError("invalid_request_error", `the multipart/form-data body is malformed: ${why}`);

/**
 * The parameters of a header value after its first `;` (`form-data; name="model"`), names
 * lowercased; the first of a repeated one counts. Values are tokens or quoted strings, whose
 * backslash escapes are undone. Null when a parameter has no `=` or a quoted string never ends.
 */
export const headerParams = (value: string): Map<string, string> | null => {
  const params = new Map<string, string>();
  let at = value.indexOf(";");
  while (at >= 0 && at < value.length) {
    at += 1;
    while (value[at] === " " || value[at] === "\t") at += 1;
    if (at >= value.length) break;
    const eq = value.indexOf("=", at);
    if (eq < 0) return null;
    const name = value.slice(at, eq).trim().toLowerCase();
    let text: string;
    let end: number;
    if (value[eq + 1] === '"') {
      text = "";
      end = eq + 2;
      for (;;) {
        const c = value[end];
        if (c === undefined) return null;
        if (c === '"') break;
        if (c === "\\" && end + 1 < value.length) end += 1;
        text += value[end];
        end += 1;
      }
      end = value.indexOf(";", end + 1);
    } else {
      end = value.indexOf(";", eq + 1);
      text = value.slice(eq + 1, end < 0 ? value.length : end).trim();
    }
    if (!params.has(name)) params.set(name, text);
    at = end;
  }
  return params;
};

/**
 * The boundary a `multipart/form-data` content type names: 400 when it names none, or one that
 * is not 1–70 of RFC 2046's characters.
 */
export const formBoundary = (contentType: string): string => {
  const params = headerParams(contentType);
  if (params === null)
    throw new ApiError("invalid_request_error", "the content type's parameters are malformed");
  const boundary = params.get("boundary");
  if (boundary === undefined || boundary === "")
    throw new ApiError(
      "invalid_request_error",
      "a multipart/form-data content type must name its boundary",
    );
  if (boundary.length > MAX_BOUNDARY_LENGTH || !BOUNDARY.test(boundary))
    throw new ApiError(
      "invalid_request_error",
      `a multipart boundary is 1 to ${MAX_BOUNDARY_LENGTH} letters, digits, spaces or '()+_,-./:=? (RFC 2046)`,
    );
  return boundary;
};

/** The name a part's headers give it (`Content-Disposition: form-data; name="…"`). */
const partName = (headers: string): string => {
  let disposition: string | undefined;
  if (headers !== "")
    for (const line of headers.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0 || line[0] === " " || line[0] === "\t")
        throw malformed("a part has a header line that is not `Name: value`");
      if (line.slice(0, colon).trim().toLowerCase() !== "content-disposition") continue;
      if (disposition !== undefined) throw malformed("a part has two Content-Disposition headers");
      disposition = line.slice(colon + 1).trim();
    }
  if (disposition === undefined) throw malformed("a part has no Content-Disposition header");
  const semicolon = disposition.indexOf(";");
  const type = (semicolon < 0 ? disposition : disposition.slice(0, semicolon)).trim();
  if (type.toLowerCase() !== "form-data")
    throw malformed("a part's Content-Disposition is not form-data");
  const params = headerParams(disposition);
  if (params === null) throw malformed("a part's Content-Disposition parameters are malformed");
  const name = params.get("name");
  if (name === undefined) throw malformed("a part has no name");
  return name;
};

/** Whether a boundary line ends at `at`: optional spaces or tabs (RFC 2046's padding), CRLF. */
const lineEnd = (body: Buffer, from: number): number => {
  let at = from;
  while (body[at] === SPACE || body[at] === TAB) at += 1;
  return body[at] === CR && body[at + 1] === LF ? at + 2 : -1;
};

/**
 * Where the values of the `wanted` fields lie in a multipart/form-data `body` split by
 * `boundary`: each a span of its part's content, as sent (a field named twice is 400, since
 * form parsers disagree on which one counts). The preamble before the first boundary and the
 * epilogue after the last are ignored, as RFC 2046 says; a body without a closing boundary is
 * 400, as are parts over the header or count bounds.
 */
export const scanForm = (
  body: Buffer,
  boundary: string,
  wanted: ReadonlySet<string>,
): Map<string, Span> => {
  const delimiter = Buffer.from(`\r\n--${boundary}`, "latin1");
  const fields = new Map<string, Span>();
  // The first boundary starts the body, or a line after the preamble.
  let at = body.subarray(0, delimiter.length - 2).equals(delimiter.subarray(2))
    ? 0
    : body.indexOf(delimiter);
  if (at < 0) throw malformed("the boundary the content type names never appears");
  if (at > 0) at += 2;
  for (let parts = 0; ; parts += 1) {
    // `at` is where a `--boundary` starts.
    const after = at + delimiter.length - 2;
    if (body[after] === DASH && body[after + 1] === DASH) return fields;
    if (parts === MAX_PARTS) throw malformed(`it has more than ${MAX_PARTS} parts`);
    const start = lineEnd(body, after);
    if (start < 0) throw malformed("a boundary is followed by more than its line");
    // The headers end at a blank line, which may come at once (a part without headers).
    let contentStart: number;
    let headers: string;
    if (body[start] === CR && body[start + 1] === LF) {
      contentStart = start + 2;
      headers = "";
    } else {
      const window = body.subarray(start, start + MAX_PART_HEADER_BYTES + CRLF_CRLF.length);
      const blank = window.indexOf(CRLF_CRLF);
      if (blank < 0)
        throw malformed(
          window.length < MAX_PART_HEADER_BYTES + CRLF_CRLF.length
            ? "a part's headers never end"
            : `a part has more than ${MAX_PART_HEADER_BYTES} bytes of headers`,
        );
      headers = body.toString("latin1", start, start + blank);
      contentStart = start + blank + CRLF_CRLF.length;
    }
    const name = partName(headers);
    const next = body.indexOf(delimiter, contentStart);
    if (next < 0) throw malformed("it ends inside a part, without its closing boundary");
    if (wanted.has(name)) {
      if (fields.has(name)) throw malformed(`it has more than one ${name} field`);
      fields.set(name, { start: contentStart, end: next });
    }
    at = next + 2;
  }
};
