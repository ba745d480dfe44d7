import type { IncomingHttpHeaders } from "node:http";
import { inferenceFields } from "@cortex/http-kit";
import { describe, expect, it } from "vitest";
import { affinityKeyOf } from "./affinity-key.js";

// The conversation's key as the inference path reads it: from the bytes a client sent, scanned
// (never parsed) the way openai-routes does, so a body here goes through inferenceFields first.

const keyOf = (body: unknown, headers: IncomingHttpHeaders = {}): string | undefined => {
  const bytes = Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  return affinityKeyOf(headers, bytes, inferenceFields(bytes));
};

const SYSTEM = { role: "system", content: "You are terse." };
type Message = { role: string; content: string };
const chatOf = (messages: Message[], fields: Record<string, unknown> = {}) => ({
  model: "m",
  messages,
  ...fields,
});
const turn1 = chatOf([SYSTEM, { role: "user", content: "first question" }]);
const turn2 = chatOf([
  SYSTEM,
  { role: "user", content: "first question" },
  { role: "assistant", content: "first answer" },
  { role: "user", content: "second question" },
]);

describe("affinityKeyOf", () => {
  it.each([
    ["the X-Session-Id header", { "x-session-id": "sess-1" }, chatOf([]), "s:sess-1"],
    ["the body's prompt_cache_key", {}, chatOf([], { prompt_cache_key: "pck-1" }), "k:pck-1"],
    ["the body's user", {}, chatOf([], { user: "alice" }), "u:alice"],
  ])("keys by %s", (_what, headers, body, key) => {
    expect(keyOf(body, headers)).toBe(key);
  });

  it("prefers the header, then prompt_cache_key, then user, then the messages", () => {
    const all = chatOf(turn1.messages, { prompt_cache_key: "pck", user: "alice" });
    expect(keyOf(all, { "x-session-id": "sess" })).toBe("s:sess");
    expect(keyOf(all)).toBe("k:pck");
    expect(keyOf(chatOf(turn1.messages, { user: "alice" }))).toBe("u:alice");
    expect(keyOf(turn1)).toMatch(/^m:/);
  });

  it("decodes a JSON-escaped name, and keeps each source's keys apart", () => {
    expect(keyOf('{"model":"m","user":"al\\u0069ce"}')).toBe("u:alice");
    // The same name from two sources is two conversations.
    expect(keyOf(chatOf([], { user: "x" }))).not.toBe(keyOf(chatOf([], { prompt_cache_key: "x" })));
  });

  it("skips empty and non-string names for the next source", () => {
    expect(keyOf(chatOf(turn1.messages, { user: "" }), { "x-session-id": "" })).toBe(keyOf(turn1));
    expect(keyOf(chatOf(turn1.messages, { prompt_cache_key: 42, user: null }))).toBe(keyOf(turn1));
  });

  it("keys every turn of a conversation alike by its messages through the first user one", () => {
    expect(keyOf(turn1)).toBe(keyOf(turn2));
    expect(keyOf(turn1)).not.toBe(
      keyOf(chatOf([SYSTEM, { role: "user", content: "another question" }])),
    );
    expect(keyOf(turn1)).not.toBe(
      keyOf(chatOf([{ role: "system", content: "Be verbose." }, ...turn1.messages.slice(1)])),
    );
  });

  it("reads up to the first user message when it is the third element", () => {
    const opening: Message[] = [SYSTEM, { role: "assistant", content: "How can I help?" }];
    const first = chatOf([...opening, { role: "user", content: "q1" }]);
    const later = chatOf([
      ...opening,
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q2" },
    ]);
    expect(keyOf(first)).toMatch(/^m:/);
    expect(keyOf(later)).toBe(keyOf(first));
    // Each of the three elements is part of the key.
    const changed = (index: number) =>
      keyOf(chatOf(first.messages.map((m, i) => (i === index ? { ...m, content: `${i}!` } : m))));
    for (const index of [0, 1, 2]) expect(changed(index)).not.toBe(keyOf(first));
  });

  it("keys a conversation without a user message by the messages it has", () => {
    const onlySystem = chatOf([SYSTEM]);
    expect(keyOf(onlySystem)).toMatch(/^m:/);
    expect(keyOf(onlySystem)).not.toBe(keyOf(chatOf([{ role: "system", content: "other" }])));
  });

  it("keys a completion by the start of its prompt", () => {
    const head = "x".repeat(4096);
    const key = keyOf({ model: "m", prompt: `${head} tail one` });
    expect(key).toMatch(/^p:/);
    // Past the first 2 KiB a prompt may differ: it is the same document.
    expect(keyOf({ model: "m", prompt: `${head} tail two` })).toBe(key);
    expect(keyOf({ model: "m", prompt: `y${head}` })).not.toBe(key);
    expect(keyOf({ model: "m", prompt: "short one" })).not.toBe(
      keyOf({ model: "m", prompt: "short two" }),
    );
  });

  it.each([
    ["a body with nothing to key by", { model: "m" }],
    ["an empty messages array", chatOf([])],
    ["messages that are not an array", { model: "m", messages: "hello" }],
  ])("is undefined for %s", (_what, body) => {
    expect(keyOf(body)).toBeUndefined();
  });

  it("ignores an X-Session-Id of 2,000 characters and keys by the body instead", () => {
    const long = "s".repeat(2000);
    expect(keyOf(turn1, { "x-session-id": long })).toBe(keyOf(turn1));
    expect(keyOf(chatOf([], { user: "alice" }), { "x-session-id": long })).toBe("u:alice");
    expect(keyOf({ model: "m" }, { "x-session-id": long })).toBeUndefined();
    // Up to 1,024 characters it is a name.
    expect(keyOf(turn1, { "x-session-id": "s".repeat(1024) })).toBe(`s:${"s".repeat(1024)}`);
  });

  it("ignores a prompt_cache_key or user of 2,000 characters", () => {
    const long = "k".repeat(2000);
    expect(keyOf(chatOf(turn1.messages, { prompt_cache_key: long, user: "bob" }))).toBe("u:bob");
    expect(keyOf(chatOf(turn1.messages, { user: long }))).toBe(keyOf(turn1));
  });
});
