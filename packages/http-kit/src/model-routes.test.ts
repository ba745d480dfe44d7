import { describe, expect, it } from "vitest";
import { ApiError } from "./api-error.js";
import { forwardedUrl, modelRoutePath, queryParamSpan } from "./model-routes.js";

describe("modelRoutePath", () => {
  it.each([
    // Every POST /v1/* as it is, its query dropped.
    ["POST", "/v1/chat/completions", "/v1/chat/completions"],
    ["POST", "/v1/completions?stream=true", "/v1/completions"],
    ["POST", "/v1/anything/new", "/v1/anything/new"],
    ["POST", "/v1/audio/transcriptions", "/v1/audio/transcriptions"],
    ["POST", "/v1/messages/count_tokens", "/v1/messages/count_tokens"],
    // llama-server's own routes.
    ["POST", "/rerank", "/rerank"],
    ["POST", "/reranking?top_n=3", "/reranking"],
    ["POST", "/infill", "/infill"],
    ["POST", "/completion", "/completion"],
    // Versionless aliases of the named routes.
    ["POST", "/v/chat/completions", "/v1/chat/completions"],
    ["POST", "/v/responses?x=1", "/v1/responses"],
    ["POST", "/v/messages/count_tokens", "/v1/messages/count_tokens"],
    ["POST", "/v/audio/transcriptions", "/v1/audio/transcriptions"],
    ["POST", "/v/images/variations", "/v1/images/variations"],
    ["POST", "/v/rerank", "/v1/rerank"],
    // GET with the model in the query.
    ["GET", "/v1/audio/voices?model=tts", "/v1/audio/voices"],
    ["GET", "/v1/audio/voices", "/v1/audio/voices"],
    ["GET", "/v/audio/voices?model=tts", "/v1/audio/voices"],
  ])("%s %s goes on as %s", (method, url, path) => {
    expect(modelRoutePath(method, url)).toBe(path);
  });

  it.each([
    ["POST", "/v1/"],
    ["POST", "/v1"],
    ["POST", "/v1?x=1"],
    ["POST", "/v10/chat/completions"],
    ["POST", "/v2/chat/completions"],
    ["POST", "/v/"],
    ["POST", "/v/unknown"],
    ["POST", "/v/models/load"],
    ["POST", "/v/../models/load"],
    ["POST", "/v//chat/completions"],
    ["POST", "/v/chat/completions/"],
    ["POST", "/models/load"],
    ["POST", "/models/unload"],
    ["POST", "/discovery"],
    ["POST", "/rerank/x"],
    ["POST", "/completions"],
    ["POST", "/upstream/m/completion"],
    ["POST", "/"],
    ["GET", "/v1/models"],
    ["GET", "/v1/chat/completions"],
    ["GET", "/v1/audio/voices/x"],
    ["GET", "/rerank"],
    ["PUT", "/v1/chat/completions"],
    ["HEAD", "/v1/audio/voices"],
    ["post", "/v1/chat/completions"],
    ["POST", undefined],
    [undefined, "/v1/chat/completions"],
  ])("%s %s is not model-routed", (method, url) => {
    expect(modelRoutePath(method, url)).toBeNull();
  });
});

describe("forwardedUrl", () => {
  it.each([
    ["/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions"],
    ["/v1/chat/completions?a=1", "/v1/chat/completions", "/v1/chat/completions?a=1"],
    ["/v/chat/completions?a=1&b", "/v1/chat/completions", "/v1/chat/completions?a=1&b"],
    ["/v/audio/voices?model=x", "/v1/audio/voices", "/v1/audio/voices?model=x"],
    ["/rerank?", "/rerank", "/rerank?"],
  ])("%s under %s is %s", (url, path, expected) => {
    expect(forwardedUrl(url, path)).toBe(expected);
  });

  it("answers the client's own string when nothing changes", () => {
    const url = `/v1/chat/completions?${"q".repeat(10)}`;
    expect(forwardedUrl(url, "/v1/chat/completions")).toBe(url);
  });
});

describe("queryParamSpan", () => {
  const value = (url: string) => {
    const span = queryParamSpan(url, "model");
    return span === null ? null : url.slice(span.start, span.end);
  };

  it.each([
    ["/p", null],
    ["/p?", null],
    ["/p?modelx=1", null],
    ["/p?model", ""],
    ["/p?model=", ""],
    ["/p?model=a", "a"],
    ["/p?x=1&model=a%2Fb&y=2", "a%2Fb"],
    ["/p?%6Dodel=a", "a"],
    ["/p?model=a=b", "a=b"],
    ["/p?%E0=1&model=a", "a"],
  ])("%s has model %j", (url, expected) => {
    expect(value(url)).toBe(expected);
  });

  it("refuses a parameter named twice, however it is spelt", () => {
    for (const url of ["/p?model=a&model=b", "/p?model=a&mod%65l=a", "/p?model&model"]) {
      let caught: unknown;
      try {
        queryParamSpan(url, "model");
      } catch (error) {
        caught = error;
      }
      expect(caught, url).toBeInstanceOf(ApiError);
      expect(caught).toMatchObject({ code: "invalid_request_error", param: "model" });
    }
  });
});
