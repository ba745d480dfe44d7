import { createHash } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { arrayElements, type InferenceFields, type Span, scanJsonObject } from "@cortex/http-kit";

// A conversation's affinity key, read from a request without parsing its body: the
// `X-Session-Id` header, else the body's `prompt_cache_key`, else its `user`, else a hash of the
// conversation's stable prefix (the messages up to and including the first user message, or
// the start of `prompt`). Turns of one conversation share that prefix byte for byte, since a
// client sends its history again each time.

/** A header, key or user longer than this is not a conversation's name: the next source keys it. */
const MAX_NAME = 1024;
/** Messages looked at for the first user message. */
const MAX_PREFIX_MESSAGES = 16;
/** How much of a `prompt` is its stable start. */
const PROMPT_PREFIX_BYTES = 2048;

const digest = (parts: readonly Uint8Array[]): string => {
  const hash = createHash("sha1");
  for (const part of parts) hash.update(part);
  return hash.digest("base64url");
};

/** A JSON string member's value, when it is a short string. */
const shortString = (body: Buffer, span: Span | undefined): string | undefined => {
  if (span === undefined || body[span.start] !== 0x22 || span.end - span.start > MAX_NAME + 2)
    return undefined;
  const value = JSON.parse(body.toString("utf8", span.start, span.end)) as string;
  return value === "" ? undefined : value;
};

const ROLE: ReadonlySet<string> = new Set(["role"]);

/** Whether a message (an element of `messages`) says `"role": "user"`. */
const isUserMessage = (body: Buffer, element: Span): boolean => {
  if (body[element.start] !== 0x7b) return false;
  const role = scanJsonObject(body.subarray(element.start, element.end), ROLE, 64).get("role");
  return (
    role !== undefined &&
    body.toString("latin1", element.start + role.start, element.start + role.end) === '"user"'
  );
};

/** The messages through the first user one (all looked at, when none is a user's). */
const messagesPrefix = (body: Buffer, span: Span): Uint8Array[] | undefined => {
  const elements = arrayElements(body, span, MAX_PREFIX_MESSAGES);
  if (elements.length === 0) return undefined;
  const parts: Uint8Array[] = [];
  for (const element of elements) {
    parts.push(body.subarray(element.start, element.end));
    if (isUserMessage(body, element)) break;
  }
  return parts;
};

/** The conversation's key, or undefined when the request carries nothing to key it by. */
export const affinityKeyOf = (
  headers: IncomingHttpHeaders,
  body: Buffer,
  fields: Pick<InferenceFields, "members">,
): string | undefined => {
  const session = headers["x-session-id"];
  if (typeof session === "string" && session.length > 0 && session.length <= MAX_NAME)
    return `s:${session}`;
  const { members } = fields;
  const cacheKey = shortString(body, members.get("prompt_cache_key"));
  if (cacheKey !== undefined) return `k:${cacheKey}`;
  const user = shortString(body, members.get("user"));
  if (user !== undefined) return `u:${user}`;
  const messages = members.get("messages");
  if (messages !== undefined) {
    const prefix = messagesPrefix(body, messages);
    if (prefix !== undefined) return `m:${digest(prefix)}`;
  }
  const prompt = members.get("prompt");
  if (prompt !== undefined) {
    const end = Math.min(prompt.end, prompt.start + PROMPT_PREFIX_BYTES);
    return `p:${digest([body.subarray(prompt.start, end)])}`;
  }
  return undefined;
};
