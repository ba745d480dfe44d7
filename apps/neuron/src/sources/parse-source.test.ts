import { describe, expect, it } from "vitest";
import { parseContentRange } from "./download.js";
import { hfRepositoryOf, isInside, type ParsedSource, parseSource } from "./parse-source.js";

const context = { modelsDir: "/srv/models", hfEndpoint: "https://huggingface.co" };
const parse = (source: string): ParsedSource => parseSource(source, context);

describe("parseSource: accepted forms", () => {
  it.each([
    ["qwen.gguf", "/srv/models/qwen.gguf"],
    ["./qwen.gguf", "/srv/models/qwen.gguf"],
    ["sub/dir/qwen.gguf", "/srv/models/sub/dir/qwen.gguf"],
    ["model:v1.gguf", "/srv/models/model:v1.gguf"],
    ["a..b.gguf", "/srv/models/a..b.gguf"],
    ["/srv/models/qwen.gguf", "/srv/models/qwen.gguf"],
    ["/srv/models//x/./qwen.gguf", "/srv/models/x/qwen.gguf"],
    ["file:///srv/models/qwen.gguf", "/srv/models/qwen.gguf"],
    ["file://localhost/srv/models/q%20w.gguf", "/srv/models/q w.gguf"],
  ])("%s is the local file %s", (source, path) => {
    expect(parse(source)).toEqual({ kind: "local", path });
  });

  it.each([
    [
      "https://example.com/models/q.gguf?sig=secret#frag",
      "https://example.com/models/q.gguf?sig=secret",
      "https://example.com/models/q.gguf",
      "/srv/models/downloads/example.com/models/q.gguf",
    ],
    [
      "https://example.com:8443/a%20b/q+1.gguf",
      "https://example.com:8443/a%20b/q+1.gguf",
      "https://example.com:8443/a%20b/q+1.gguf",
      "/srv/models/downloads/example.com_8443/a_b/q_1.gguf",
    ],
    [
      "http://127.0.0.1:9000/q.gguf",
      "http://127.0.0.1:9000/q.gguf",
      "http://127.0.0.1:9000/q.gguf",
      "/srv/models/downloads/127.0.0.1_9000/q.gguf",
    ],
    [
      "http://localhost/q.gguf",
      "http://localhost/q.gguf",
      "http://localhost/q.gguf",
      "/srv/models/downloads/localhost/q.gguf",
    ],
    [
      "http://[::1]:80/q.gguf",
      "http://[::1]/q.gguf",
      "http://[::1]/q.gguf",
      "/srv/models/downloads/___1_/q.gguf",
    ],
  ])("%s downloads %s into %s", (source, url, display, target) => {
    expect(parse(source)).toEqual({ kind: "download", url, display, target, hf: false });
  });

  it("resolves hf: files against the endpoint, on main by default", () => {
    expect(parse("hf:Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf")).toEqual({
      kind: "download",
      url: "https://huggingface.co/Qwen/Qwen3-8B-GGUF/resolve/main/Qwen3-8B-Q4_K_M.gguf",
      display: "https://huggingface.co/Qwen/Qwen3-8B-GGUF/resolve/main/Qwen3-8B-Q4_K_M.gguf",
      target: "/srv/models/hf/Qwen/Qwen3-8B-GGUF/main/Qwen3-8B-Q4_K_M.gguf",
      hf: true,
    });
  });

  it("keeps a pinned revision and nested file paths, under an endpoint with a path prefix", () => {
    const parsed = parseSource("hf:o/r@v1.0/sub/f.gguf", {
      modelsDir: "/m",
      hfEndpoint: "http://127.0.0.1:8080/mirror",
    });
    expect(parsed).toEqual({
      kind: "download",
      url: "http://127.0.0.1:8080/mirror/o/r/resolve/v1.0/sub/f.gguf",
      display: "http://127.0.0.1:8080/mirror/o/r/resolve/v1.0/sub/f.gguf",
      target: "/m/hf/o/r/v1.0/sub/f.gguf",
      hf: true,
    });
  });

  it("passes a bare hf:owner/repo through for harnesses that fetch repos themselves", () => {
    expect(parse("hf:Qwen/Qwen3-8B")).toEqual({ kind: "passthrough", id: "Qwen/Qwen3-8B" });
  });
});

describe("parseSource: refusals", () => {
  it.each([
    ["", /empty/],
    ["../x.gguf", /\.\. segment/],
    ["sub/../../x.gguf", /\.\. segment/],
    ["sub/../x.gguf", /\.\. segment/],
    ["..\\x.gguf", /\.\. segment/],
    ["/srv/models/../etc/passwd", /\.\. segment/],
    ["/etc/passwd", /outside models_dir/],
    ["/srv/models", /outside models_dir/],
    ["/srv/models-evil/x.gguf", /outside models_dir/],
    ["x\0.gguf", /NUL/],
    ["file:///etc/passwd", /outside models_dir/],
    ["file:///srv/models/%2e%2e/etc/passwd", /\. or \.\. segments/],
    ["file:///srv/models/%2E%2E/etc/passwd", /\. or \.\. segments/],
    ["file:///srv/models/a%2f..%2fb", /separator/],
    ["file:///srv/models/a%00.gguf", /NUL/],
    ["file://server/share/x.gguf", /not a usable file URL/],
    ["https://example.com/a/%2e%2e/%2e%2e/etc/passwd", /\. or \.\. segments/],
    ["https://example.com/a/../b.gguf", /\. or \.\. segments/],
    ["https://example.com/a/.%2E/b.gguf", /\. or \.\. segments/],
    ["https://example.com/a\\..\\b.gguf", /\. or \.\. segments/],
    ["https://example.com/a%5c..%5cb.gguf", /separator/],
    ["https://example.com/bad%zz.gguf", /percent-encoding/],
    ["https://example.com/", /names no file/],
    ["https://example.com/dir/", /names no file/],
    ["https://user:pw@example.com/x.gguf", /credentials/],
    ["http://example.com/x.gguf", /plain http/],
    ["http://10.0.0.1/x.gguf", /plain http/],
    ["http://127.0.0.1.evil.com/x.gguf", /plain http/],
    ["https://0.0.0.0/x.gguf", /not an address one can connect to/],
    ["https://[::]/x.gguf", /not an address one can connect to/],
    ["https://0/x.gguf", /not an address one can connect to/],
    ["ftp://example.com/x.gguf", /scheme "ftp:" is not supported/],
    ["s3://bucket/x.gguf", /not supported/],
    ["hf:a/b/../c.gguf", /invalid segment "\.\."/],
    ["hf:../b/c.gguf", /invalid segment "\.\."/],
    ["hf:a/b@../c.gguf", /invalid segment "\.\."/],
    ["hf:a/b/./c.gguf", /invalid segment "\."/],
    ["hf:a/b//c.gguf", /invalid segment ""/],
    ["hf:a/b/c%2f.gguf", /invalid segment/],
    ["hf:a b/c/d.gguf", /invalid segment/],
    ["hf:a", /names no repository/],
    ["hf:a/b@/c.gguf", /invalid segment ""/],
    ["hf:a/b@v1", /pins a revision but names no file/],
    // A repository id is handed to a harness as an argument: it must never read as an option.
    ["hf:--help/x", /"--help" must start with a letter, a digit or _/],
    ["hf:-o/r", /must start with a letter, a digit or _/],
    ["hf:o/-r", /must start with a letter, a digit or _/],
    ["hf:o/.r/f.gguf", /must start with a letter, a digit or _/],
  ])("refuses %j", (source, message) => {
    const parsed = parse(source);
    expect(parsed.kind).toBe("reject");
    expect(parsed.kind === "reject" ? parsed.message : "").toMatch(message);
  });
});

describe("hfRepositoryOf", () => {
  it.each([
    ["hf:Qwen/Qwen3-8B", { repo: "Qwen/Qwen3-8B", whole: true }],
    ["hf:Qwen/Qwen3-8B-GGUF/q4.gguf", { repo: "Qwen/Qwen3-8B-GGUF", whole: false }],
    ["hf:o/r@v1/sub/f.gguf", { repo: "o/r", whole: false }],
    ["hf:_o/r_", { repo: "_o/r_", whole: true }],
    ["hf:o", null],
    ["hf:../r", null],
    ["hf:-o/r", null],
    ["o/r", null],
    ["https://huggingface.co/o/r", null],
  ])("%s is %j", (source, repository) => {
    expect(hfRepositoryOf(source)).toEqual(repository);
  });
});

describe("helpers", () => {
  it.each([
    ["/m", "/m/a", true],
    ["/m", "/m/..a", true],
    ["/m", "/m", false],
    ["/m", "/", false],
    ["/m", "/mm/a", false],
    ["/m", "/m/../a", false],
  ])("isInside(%s, %s) is %s", (root, path, inside) => {
    expect(isInside(root, path)).toBe(inside);
  });

  it.each([
    ["bytes 100-199/1000", { start: 100, total: 1000 }],
    ["bytes */1000", { start: null, total: 1000 }],
    ["bytes 0-9/*", { start: 0, total: null }],
    ["items 0-9/10", null],
    [null, null],
  ])("parseContentRange(%j)", (header, parsed) => {
    expect(parseContentRange(header)).toEqual(parsed);
  });
});
