import { describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import { bearerCheck, bearerOf, clientKeyCheck, wrongToken } from "./auth.js";

describe("bearerOf", () => {
  it.each([
    ["Bearer abc", "abc"],
    ["bearer abc", "abc"],
    ["BEARER abc", "abc"],
    ["BeArEr abc", "abc"],
    ["Bearer    abc   ", "abc"],
    ["Bearer\tabc", "abc"],
    ["Bearer a b", "a b"],
    ["Bearer Bearer abc", "Bearer abc"],
    ["Bearer", ""],
    ["Bearer ", ""],
    ["Bearer    ", ""],
    ["Bearerabc", ""],
    ["Basic abc", ""],
    ["Token Bearer abc", ""],
    ["abc", ""],
    ["", ""],
    [undefined, ""],
  ])("%j holds the token %j", (header, token) => {
    expect(bearerOf(header)).toBe(token);
  });
});

describe("bearerCheck", () => {
  it("accepts the right token, again and again (the second time from its cache)", () => {
    const check = bearerCheck("s3cret");
    expect(check("Bearer s3cret")).toBe(true);
    expect(check("Bearer s3cret")).toBe(true);
    expect(check("Bearer s3cret")).toBe(true);
  });

  it.each([
    "bearer s3cret",
    "BEARER s3cret",
    "Bearer   s3cret",
    "Bearer s3cret  ",
    "Bearer\ts3cret",
  ])("takes the scheme in any case and spacing: %j", (header) => {
    const check = bearerCheck("s3cret");
    expect(check(header)).toBe(true);
    expect(check(header)).toBe(true);
  });

  it.each([
    ["a wrong token", "Bearer wrong"],
    ["the token in another case", "Bearer S3CRET"],
    ["a prefix of the token", "Bearer s3cre"],
    ["the token with more after it", "Bearer s3crets"],
    ["the token inside another", "Bearer xs3cret"],
    ["the token without a scheme", "s3cret"],
    ["the token under another scheme", "Basic s3cret"],
    ["the scheme glued to the token", "Bearers3cret"],
    ["the scheme alone", "Bearer"],
    ["the scheme and a blank", "Bearer  "],
    ["an empty header", ""],
    ["no header", undefined],
  ])("refuses %s", (_name, header) => {
    const check = bearerCheck("s3cret");
    expect(check(header)).toBe(false);
    expect(check(header)).toBe(false);
  });

  it("accepts each of several tokens and nothing else", () => {
    const check = bearerCheck(["k1", "k2", "k3"]);
    for (const token of ["k1", "k2", "k3", "k2", "k1"]) expect(check(`Bearer ${token}`)).toBe(true);
    expect(check("Bearer k4")).toBe(false);
    expect(check("Bearer k1 k2")).toBe(false);
  });

  it("ignores empty tokens among real ones", () => {
    const check = bearerCheck(["", "k1"]);
    expect(check("Bearer k1")).toBe(true);
    expect(check("Bearer ")).toBe(false);
    expect(check("Bearer")).toBe(false);
    expect(check(undefined)).toBe(false);
  });

  it.each([
    ["an empty string", ""],
    ["an empty list", []],
    ["a list of empty strings", ["", ""]],
  ])("lets everything through when configured with %s", (_name, tokens) => {
    const check = bearerCheck(tokens);
    expect(check(undefined)).toBe(true);
    expect(check("")).toBe(true);
    expect(check("Bearer anything")).toBe(true);
    expect(check("Basic whatever")).toBe(true);
  });

  it("never lets a wrong token through its cache", () => {
    const check = bearerCheck("right");
    expect(check("Bearer wrong")).toBe(false);
    expect(check("Bearer right")).toBe(true);
    // Refused headers are not remembered, right ones do not make their neighbours right.
    expect(check("Bearer wrong")).toBe(false);
    expect(check("Bearer righ")).toBe(false);
    expect(check("Bearer right ")).toBe(true);
    expect(check("Bearer rightt")).toBe(false);
    expect(check(undefined)).toBe(false);
  });

  it("keeps a cache per check: a header right for one is not right for another", () => {
    const first = bearerCheck("token-a");
    const second = bearerCheck("token-b");
    expect(first("Bearer token-a")).toBe(true);
    expect(second("Bearer token-a")).toBe(false);
    expect(second("Bearer token-b")).toBe(true);
    expect(first("Bearer token-b")).toBe(false);
  });

  it("still answers right and wrong headers alike once its cache (64) is full", () => {
    const check = bearerCheck("s3cret");
    // 100 distinct spellings of the right header: the first 64 fill the cache.
    const spellings = Array.from({ length: 100 }, (_, i) => `Bearer${" ".repeat(i + 1)}s3cret`);
    for (const header of spellings) expect(check(header)).toBe(true);
    for (const header of spellings) expect(check(header)).toBe(true);
    expect(check("Bearer S3cret")).toBe(false);
    expect(check("Bearer s3cre")).toBe(false);
    expect(check(`${spellings[99]}x`)).toBe(false);
    expect(check(undefined)).toBe(false);
  });
});

describe("clientKeyCheck", () => {
  it.each([
    ["Authorization: Bearer", { authorization: "Bearer k1" }, true],
    ["x-api-key", { "x-api-key": "k1" }, true],
    ["api-key", { "api-key": "k2" }, true],
    ["x-api-key with blanks", { "x-api-key": " k1 " }, true],
    ["a wrong x-api-key", { "x-api-key": "k3" }, false],
    ["a wrong api-key", { "api-key": "nope" }, false],
    ["an empty x-api-key", { "x-api-key": "" }, false],
    ["x-api-key holding a bearer header", { "x-api-key": "Bearer k1" }, false],
    ["a repeated x-api-key", { "x-api-key": ["k1", "k1"] }, false],
    [
      "a wrong Authorization beside a right x-api-key",
      { authorization: "Bearer no", "x-api-key": "k1" },
      false,
    ],
    ["a wrong x-api-key beside a right api-key", { "x-api-key": "no", "api-key": "k1" }, false],
    ["no key at all", {}, false],
  ])("%s: %j → %s", (_name, headers, ok) => {
    const check = clientKeyCheck(["k1", "k2"]);
    expect(check(headers)).toBe(ok);
    expect(check(headers)).toBe(ok);
  });

  it("lets everything through without keys", () => {
    expect(clientKeyCheck([])({})).toBe(true);
    expect(clientKeyCheck("")({ "x-api-key": "whatever" })).toBe(true);
  });
});

describe("wrongToken", () => {
  it("is a 401 invalid_api_key ApiError that names no token", () => {
    const error = wrongToken();
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: "invalid_api_key", retryAfterS: null, param: null });
  });
});
