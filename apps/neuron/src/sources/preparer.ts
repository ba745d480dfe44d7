import { mkdir, realpath, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { unlessAborted } from "@cortex/http-kit";
import type { LoadProgress } from "@cortex/protocol";
import { NeuronError } from "../errors.js";
import type { ProgressListener, SourcePreparer } from "../models/model-manager.js";
import { download } from "./download.js";
import { isInside, type ParsedSource, parseSource, type SourceContext } from "./parse-source.js";

export interface LocalSourcesOptions {
  /** Where local files live and downloads go; nothing outside it is ever read or written. */
  readonly modelsDir: string;
  /** Base URL of `hf:` sources (https://huggingface.co, or a loopback fake in tests). */
  readonly hfEndpoint: string;
  /** Sent as `Authorization: Bearer` to hf_endpoint only, never to other hosts or redirects. */
  readonly hfToken?: string | undefined;
  /** No response or no data for this long fails a download; default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Progress goes out at most this often unless another 1% arrived; default 250 ms. */
  readonly progressIntervalMs?: number;
  readonly maxRedirects?: number;
  /** A download completed: models_dir holds one more file (the held-sources list rescans). */
  readonly onStored?: () => void;
}

/** A SourcePreparer that can also refuse a bad source synchronously, before anything changes. */
export interface LocalSources extends SourcePreparer {
  /** Throws NeuronError("invalid_request_error", …, {param: "source"}) for a source it would refuse. */
  check(source: string): void;
}

type Download = Extract<ParsedSource, { kind: "download" }>;

/** One download shared by every caller that wants the same target. */
interface Flight {
  readonly controller: AbortController;
  readonly listeners: Set<ProgressListener>;
  waiters: number;
  settled: boolean;
  /** Set once every caller left: the download is being aborted and must not be joined. */
  abandoned: boolean;
  last: LoadProgress | null;
  done: Promise<string>;
}

const refuse = (message: string): NeuronError =>
  new NeuronError("invalid_request_error", message, { param: "source" });

const isMissing = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
};

/** Calls a listener without letting a broken one stop the download for everyone. */
const tell = (listener: ProgressListener, progress: LoadProgress): void => {
  try {
    listener(progress);
  } catch {
    // A listener's failure is its own caller's problem; the bytes keep coming for the rest.
  }
};

class LocalSourcePreparer implements LocalSources {
  readonly #context: SourceContext;
  readonly #hfToken: string | null;
  readonly #idleTimeoutMs: number;
  readonly #progressIntervalMs: number;
  readonly #maxRedirects: number;
  readonly #onStored: (() => void) | undefined;
  readonly #flights = new Map<string, Flight>();

  constructor(options: LocalSourcesOptions) {
    let endpoint: URL;
    try {
      endpoint = new URL(options.hfEndpoint);
    } catch {
      endpoint = new URL("invalid:");
    }
    if (endpoint.protocol !== "https:" && endpoint.protocol !== "http:") {
      throw new NeuronError(
        "invalid_request_error",
        `hf_endpoint "${options.hfEndpoint}" must be an http(s) URL such as https://huggingface.co`,
        { param: "hf_endpoint" },
      );
    }
    this.#context = {
      modelsDir: resolve(options.modelsDir),
      hfEndpoint: `${endpoint.origin}${endpoint.pathname.replace(/\/+$/, "")}`,
    };
    this.#hfToken = options.hfToken ? options.hfToken : null;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.#progressIntervalMs = options.progressIntervalMs ?? 250;
    this.#maxRedirects = options.maxRedirects ?? 10;
    this.#onStored = options.onStored;
  }

  check(source: string): void {
    this.#parse(source);
  }

  async prepare(
    source: string,
    onProgress: ProgressListener,
    signal?: AbortSignal,
  ): Promise<string> {
    signal?.throwIfAborted();
    const parsed = this.#parse(source);
    switch (parsed.kind) {
      case "passthrough":
        return parsed.id;
      case "local":
        return unlessAborted(this.#local(parsed.path, source), signal);
      case "download":
        return this.#join(parsed, onProgress, signal);
    }
  }

  #parse(source: string): Exclude<ParsedSource, { kind: "reject" }> {
    const parsed = parseSource(source, this.#context);
    if (parsed.kind === "reject") throw refuse(parsed.message);
    return parsed;
  }

  /** The models directory with symlinks resolved, created when missing. */
  async #root(): Promise<string> {
    await mkdir(this.#context.modelsDir, { recursive: true });
    return realpath(this.#context.modelsDir);
  }

  /** Refuses `path` when a symlink on the way takes it out of models_dir. */
  async #insideRoot(root: string, path: string, source: string): Promise<string> {
    const real = await realpath(path);
    if (!isInside(root, real)) {
      throw refuse(
        `source "${source}" leads through a symlink to ${real}, outside models_dir (${this.#context.modelsDir}); move the file into models_dir`,
      );
    }
    return real;
  }

  async #local(path: string, source: string): Promise<string> {
    const root = await this.#root();
    try {
      return await this.#insideRoot(root, path, source);
    } catch (error) {
      if (!isMissing(error)) throw error;
      throw new NeuronError(
        "load_failed",
        `model file ${path} does not exist; put the model there or fix the catalogue source "${source}"`,
        { param: "source", cause: error },
      );
    }
  }

  /** Joins the download of `parsed.target`, starting it when nobody else is waiting for it. */
  async #join(
    parsed: Download,
    onProgress: ProgressListener,
    signal?: AbortSignal,
  ): Promise<string> {
    const current = this.#flights.get(parsed.target);
    const flight =
      current === undefined || current.abandoned ? this.#start(parsed, current?.done) : current;
    // Wrapped so that two callers passing the same function still count as two listeners.
    const listener: ProgressListener = (progress) => onProgress(progress);
    flight.waiters += 1;
    flight.listeners.add(listener);
    if (flight.last) tell(listener, flight.last);
    try {
      return await unlessAborted(flight.done, signal);
    } finally {
      flight.listeners.delete(listener);
      flight.waiters -= 1;
      if (flight.waiters === 0 && !flight.settled) {
        // The last caller left: stop the transfer, keeping the .partial for the next attempt.
        flight.abandoned = true;
        flight.controller.abort(signal?.reason);
      }
    }
  }

  #start(parsed: Download, previous: Promise<string> | undefined): Flight {
    const flight: Flight = {
      controller: new AbortController(),
      listeners: new Set(),
      waiters: 0,
      settled: false,
      abandoned: false,
      last: null,
      done: Promise.resolve(""),
    };
    flight.done = (async () => {
      // An abandoned transfer of the same file may still be writing its .partial: let it stop.
      await previous?.catch(() => {});
      return this.#fetch(parsed, flight);
    })().finally(() => {
      flight.settled = true;
      if (this.#flights.get(parsed.target) === flight) this.#flights.delete(parsed.target);
    });
    // Nobody awaits an abandoned flight; its rejection is expected.
    flight.done.catch(() => {});
    this.#flights.set(parsed.target, flight);
    return flight;
  }

  async #fetch(parsed: Download, flight: Flight): Promise<string> {
    const root = await this.#root();
    const directory = dirname(parsed.target);
    await mkdir(directory, { recursive: true });
    await this.#insideRoot(root, directory, parsed.display);
    try {
      // Already downloaded: no request at all.
      const real = await this.#insideRoot(root, parsed.target, parsed.display);
      if ((await stat(real)).isFile()) return real;
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    try {
      await this.#insideRoot(root, `${parsed.target}.partial`, parsed.display);
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
    const message = `downloading ${parsed.display}`;
    let lastAt = 0;
    let lastBytes = -1;
    let lastTotal: number | null = null;
    const emit = (bytes: number, total: number | null, force: boolean) => {
      if (bytes === lastBytes && total === lastTotal) return;
      const now = Date.now();
      const step = total !== null && total > 0 && bytes - lastBytes >= total / 100;
      const due = lastBytes < 0 || now - lastAt >= this.#progressIntervalMs;
      if (!force && !step && !due && bytes !== total) return;
      lastAt = now;
      lastBytes = bytes;
      lastTotal = total;
      flight.last = { phase: "downloading", bytes, total, message };
      for (const listener of flight.listeners) tell(listener, flight.last);
    };
    await download({
      url: parsed.url,
      display: parsed.display,
      target: parsed.target,
      headers: parsed.hf && this.#hfToken ? { authorization: `Bearer ${this.#hfToken}` } : {},
      idleTimeoutMs: this.#idleTimeoutMs,
      maxRedirects: this.#maxRedirects,
      hint: (status) => this.#hint(parsed, status),
      signal: flight.controller.signal,
      onBytes: (bytes, total) => emit(bytes, total, false),
    });
    // The last chunk may have been throttled away; every caller sees the finished size.
    const size = (await stat(parsed.target)).size;
    emit(size, size, true);
    this.#onStored?.();
    return parsed.target;
  }

  #hint(parsed: Download, status: number): string {
    if (status === 401 || status === 403) {
      if (!parsed.hf) return "; the server wants credentials, which only hf: sources get";
      return this.#hfToken
        ? "; check that HF_TOKEN has access to this repository (gated repos need their terms accepted)"
        : "; the repository may be gated or private: set HF_TOKEN";
    }
    if (status === 404) {
      return parsed.hf
        ? "; check the owner, repository, revision and file name"
        : "; check the URL in the catalogue source";
    }
    return "";
  }
}

/**
 * Sources of this node: local paths under models_dir, file:// URLs, https downloads and hf:
 * files, downloaded once into models_dir (resumable, atomic, shared by concurrent loads).
 * `hf:owner/repo` without a file is returned as the repository id `owner/repo` for harnesses
 * that fetch repositories themselves (vLLM, templates); nothing is downloaded, and the harness
 * needs HF_TOKEN in its `inherit_env` for a gated repository. The id is not a path: harnesses
 * that take a file refuse such a source (definitions.ts), and every harness runs in an empty
 * working directory of its own (process-runner.ts), so no folder can answer to the id.
 */
export const localSources = (options: LocalSourcesOptions): LocalSources =>
  new LocalSourcePreparer(options);
