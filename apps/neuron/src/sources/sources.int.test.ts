import { once } from "node:events";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  BODY,
  dir,
  hub,
  ignore,
  recorder,
  sourcesFor,
  startHub,
  stored,
  TOKEN,
  useFakeHub,
} from "./sources.fixtures.js";

// Downloads from a fake Hugging Face on loopback: where files go, tokens, resume and shared
// transfers. Redirect rules and https are in sources-redirects.int.test.ts.

useFakeHub();

describe("downloads from a fake Hugging Face", () => {
  it("stores an hf: file under models_dir/hf and reports growing progress with the total", async () => {
    const progress = recorder();
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", progress.listener);

    expect(path).toBe(stored("file.gguf"));
    expect((await readFile(path)).equals(BODY)).toBe(true);
    await expect(stat(`${path}.partial`)).rejects.toMatchObject({ code: "ENOENT" });
    expect(hub.seen).toEqual([
      { path: "/owner/repo/resolve/main/file.gguf", range: undefined, authorization: undefined },
    ]);

    const { events } = progress;
    expect(events.length).toBeGreaterThanOrEqual(2);
    for (const event of events) {
      expect(event).toMatchObject({ phase: "downloading", total: BODY.length });
      expect(event.message).toContain("/owner/repo/resolve/main/file.gguf");
    }
    const bytes = events.map((event) => event.bytes ?? -1);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    expect(new Set(bytes).size).toBe(bytes.length);
    expect(bytes.at(-1)).toBe(BODY.length);
  });

  it("keeps a pinned revision apart from main", async () => {
    const path = await sourcesFor().prepare("hf:owner/repo@v2/file.gguf", ignore);
    expect(path).toBe(join(dir, "hf", "owner", "repo", "v2", "file.gguf"));
    expect(hub.seen.map((seen) => seen.path)).toEqual(["/owner/repo/resolve/v2/file.gguf"]);
  });

  it("uses a file already present without any request", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf"), "already here");
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect(path).toBe(stored("file.gguf"));
    expect(await readFile(path, "utf8")).toBe("already here");
    expect(hub.seen).toEqual([]);
  });

  it("follows a redirect to the CDN path, keeping the file name of the source", async () => {
    const path = await sourcesFor({ hfToken: TOKEN }).prepare(
      "hf:owner/repo/redirect.gguf",
      ignore,
    );
    expect(path).toBe(stored("redirect.gguf"));
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.path)).toEqual([
      "/owner/repo/resolve/main/redirect.gguf",
      "/cdn/file.gguf",
    ]);
  });

  it("refuses a redirect to a scheme other than http(s)", async () => {
    await expect(sourcesFor().prepare("hf:owner/repo/ftp.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(/refusing a redirect to ftp:/),
    });
  });

  it("answers a 404 with load_failed naming the URL and what to check, never the token", async () => {
    const error = await sourcesFor({ hfToken: TOKEN })
      .prepare("hf:owner/repo/missing.gguf", ignore)
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ name: "NeuronError", code: "load_failed" });
    const { message } = error as Error;
    expect(message).toContain(`downloading ${hub.url}/owner/repo/resolve/main/missing.gguf failed`);
    expect(message).toContain("HTTP 404");
    expect(message).toContain("check the owner, repository, revision and file name");
    expect(message).not.toContain(TOKEN);
    await expect(stat(stored("missing.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("sends the bearer token to hf_endpoint, and says to set HF_TOKEN when it is missing", async () => {
    await expect(sourcesFor().prepare("hf:owner/gated/file.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(/HTTP 401 .*set HF_TOKEN/),
    });
    const path = await sourcesFor({ hfToken: TOKEN }).prepare("hf:owner/gated/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.authorization)).toEqual([undefined, `Bearer ${TOKEN}`]);
  });

  it("never sends the token to other hosts: not to plain URLs, not after a redirect away", async () => {
    const cdn = await startHub();
    hub.awayTo = cdn.url;
    const sources = sourcesFor({ hfToken: TOKEN });

    await sources.prepare(`${hub.url}/cdn/file.gguf`, ignore);
    expect(hub.seen).toEqual([
      { path: "/cdn/file.gguf", range: undefined, authorization: undefined },
    ]);

    const path = await sources.prepare("hf:owner/repo/away.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen[1]).toMatchObject({ authorization: `Bearer ${TOKEN}` });
    expect(cdn.seen).toEqual([
      { path: "/cdn/file.gguf", range: undefined, authorization: undefined },
    ]);
  });

  it("stores plain URLs under models_dir/downloads/<host>/<path>", async () => {
    const path = await sourcesFor().prepare(`${hub.url}/cdn/file.gguf`, ignore);
    const host = hub.url.slice("http://".length).replace(":", "_");
    expect(path).toBe(join(dir, "downloads", host, "cdn", "file.gguf"));
  });

  it("reports a refused connection as load_failed with the error code", async () => {
    const gone = await startHub();
    await gone.close();
    await expect(sourcesFor().prepare(`${gone.url}/cdn/file.gguf`, ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(
        /downloading http:\/\/127\.0\.0\.1:\d+\/cdn\/file\.gguf failed: ECONNREFUSED/,
      ),
    });
  });
});

describe("resume", () => {
  it("keeps the .partial of a cut download and resumes it with Range", async () => {
    const sources = sourcesFor();
    hub.mode = "cut";
    await expect(sources.prepare("hf:owner/repo/file.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringContaining("downloading"),
    });
    await expect(stat(stored("file.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
    const { size } = await stat(stored("file.gguf.partial"));
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThan(BODY.length);

    hub.mode = "normal";
    const progress = recorder();
    const path = await sources.prepare("hf:owner/repo/file.gguf", progress.listener);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual([undefined, `bytes=${size}-`]);
    expect(progress.events[0]).toMatchObject({ bytes: size, total: BODY.length });
    expect(progress.events.at(-1)).toMatchObject({ bytes: BODY.length, total: BODY.length });
    await expect(stat(`${path}.partial`)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("starts over when the server ignores Range and answers 200", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), "stale bytes that must go");
    hub.mode = "ignore-range";
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual(["bytes=24-"]);
  });

  it("treats a complete .partial as done when the server answers 416", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), BODY);
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual([`bytes=${BODY.length}-`]);
  });

  it("restarts when a 416 says the .partial has the wrong size", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), Buffer.concat([BODY, Buffer.from("extra")]));
    const path = await sourcesFor().prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen.map((seen) => seen.range)).toEqual([`bytes=${BODY.length + 5}-`, undefined]);
  });

  it("never renames a file whose size disagrees with the advertised total", async () => {
    await mkdir(dirname(stored("file.gguf")), { recursive: true });
    await writeFile(stored("file.gguf.partial"), BODY.subarray(0, 1000));
    hub.mode = "wrong-total";
    await expect(sourcesFor().prepare("hf:owner/repo/file.gguf", ignore)).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringContaining(`ended after ${BODY.length} of ${BODY.length + 10} bytes`),
    });
    await expect(stat(stored("file.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("fails a download that stalls longer than the idle timeout, keeping the .partial", async () => {
    hub.mode = "hold";
    await expect(
      sourcesFor({ idleTimeoutMs: 300 }).prepare("hf:owner/repo/file.gguf", ignore),
    ).rejects.toMatchObject({
      code: "load_failed",
      message: expect.stringMatching(/file\.gguf failed: no data for 0\.3 s/),
    });
    expect((await stat(stored("file.gguf.partial"))).size).toBeGreaterThan(0);
    await expect(stat(stored("file.gguf"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("single flight", () => {
  it("shares one request among concurrent callers, each getting progress", async () => {
    const sources = sourcesFor();
    const callers = [recorder(), recorder(), recorder()];
    const paths = await Promise.all(
      callers.map((caller) => sources.prepare("hf:owner/repo/file.gguf", caller.listener)),
    );
    expect(paths).toEqual(Array(3).fill(stored("file.gguf")));
    expect(hub.seen).toHaveLength(1);
    for (const caller of callers) {
      expect(caller.events.at(-1)).toMatchObject({ bytes: BODY.length, total: BODY.length });
    }
  });

  it("lets one caller give up while the others still get the file", async () => {
    hub.mode = "hold";
    const sources = sourcesFor();
    const quitter = recorder((progress) => (progress.bytes ?? 0) > 0);
    const stayer = recorder();
    const controller = new AbortController();
    const quitting = sources.prepare(
      "hf:owner/repo/file.gguf",
      quitter.listener,
      controller.signal,
    );
    const staying = sources.prepare("hf:owner/repo/file.gguf", stayer.listener);
    await quitter.reached;

    controller.abort();
    await expect(quitting).rejects.toMatchObject({ name: "AbortError" });
    hub.release();
    const path = await staying;

    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen).toHaveLength(1);
    expect(stayer.events.at(-1)).toMatchObject({ bytes: BODY.length });
    expect(quitter.events.at(-1)?.bytes).toBeLessThan(BODY.length);
  });

  it("stops the transfer when the last caller leaves, and the next one resumes the .partial", async () => {
    hub.mode = "hold";
    const sources = sourcesFor();
    const first = recorder((progress) => (progress.bytes ?? 0) > 0);
    const controller = new AbortController();
    const leaving = sources.prepare("hf:owner/repo/file.gguf", first.listener, controller.signal);
    await first.reached;

    const aborted = once(hub.events, "aborted");
    controller.abort();
    await expect(leaving).rejects.toMatchObject({ name: "AbortError" });
    await aborted;

    hub.mode = "normal";
    const path = await sources.prepare("hf:owner/repo/file.gguf", ignore);
    expect((await readFile(path)).equals(BODY)).toBe(true);
    expect(hub.seen).toHaveLength(2);
    expect(hub.seen[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
  });
});
