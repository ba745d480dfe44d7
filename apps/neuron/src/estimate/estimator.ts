import { open, realpath, stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { EstimateAnswer, EstimateRequest } from "@cortex/protocol";
import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import type { Harness } from "../harnesses/definitions.js";
import { checkRequest } from "../models/load-spec.js";
import { isInside, type ParsedSource, parseSource } from "../sources/parse-source.js";
import { estimateVram } from "./gguf-estimate.js";
import { launchShape } from "./launch-shape.js";
import { factsOf, type ModelFacts } from "./model-facts.js";
import { fileReader, type HeaderRead, notEstimable, readGgufHeader } from "./read-header.js";
import { type RemoteFile, remoteReader } from "./remote-range.js";
import { Slots } from "./slots.js";

// `POST /models/estimate` behind the route: a load request's fields in, the GPU memory that load
// would take out, from the GGUF header of the file the load would use. The source is resolved
// the way the load resolves it (sources/parse-source.ts), never downloaded: a local file or one
// already downloaded is read from disk, anything else by HTTP range reads of its header.

export interface EstimatorOptions {
  /** Where local files live and downloads go; nothing outside it is ever read. */
  readonly modelsDir: string;
  /** Base URL of `hf:` sources, as the preparer's. */
  readonly hfEndpoint: string;
  /** Sent as `Authorization: Bearer` to hf_endpoint only, never to other hosts or redirects. */
  readonly hfToken?: string | undefined;
  /** The node's harnesses: an estimate reads the argv its load would start. */
  readonly harnesses: ReadonlyMap<string, Harness>;
  /** A whole remote header read must finish within this; default 30 s. */
  readonly timeoutMs?: number;
  readonly maxRedirects?: number;
  /** Headers remembered (by source, and by size and mtime for files); default 64. */
  readonly cacheEntries?: number;
  /** How long a remote header is trusted (a branch may move); default 10 minutes. */
  readonly remoteTtlMs?: number;
  /** Header reads at once; default 4 (each may hold up to 32 MiB). */
  readonly concurrentReads?: number;
  readonly now?: () => number;
}

/** Answers estimates; throws NeuronError for every refusal. */
export interface ModelEstimator {
  estimate(request: EstimateRequest): Promise<EstimateAnswer>;
}

/** What one header read found: the model's facts and what was read for them. */
interface Known {
  readonly facts: ModelFacts;
  readonly basis: string;
  readonly expiresAt: number;
}

type Download = Extract<ParsedSource, { kind: "download" }>;

interface LocalFile {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

/** A file's cache key: a file replaced or rewritten in place is read again. */
const fileKey = (file: LocalFile): string => `file ${file.path} ${file.size} ${file.mtimeMs}`;

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

const isMissing = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
};

/** Messages quote the source, which may be 4096 characters. */
const refuse = (message: string): NeuronError =>
  new NeuronError("invalid_request_error", capText(message), { param: "source" });

/** More GPUs than any node has; also bounds the device list an estimate builds. */
const MAX_GPUS = 64;

class SourceEstimator implements ModelEstimator {
  readonly #modelsDir: string;
  readonly #hfEndpoint: string;
  readonly #hfToken: string | null;
  readonly #harnesses: ReadonlyMap<string, Harness>;
  readonly #timeoutMs: number;
  readonly #maxRedirects: number;
  readonly #cacheEntries: number;
  readonly #remoteTtlMs: number;
  readonly #now: () => number;
  readonly #slots: Slots;
  /** Insertion order is recency: a hit moves its entry to the end, the first one goes first. */
  readonly #known = new Map<string, Known>();
  /** One read per key at a time, shared by every estimate that needs it. */
  readonly #reading = new Map<string, Promise<Known>>();

  constructor(options: EstimatorOptions) {
    this.#modelsDir = resolve(options.modelsDir);
    const endpoint = new URL(options.hfEndpoint);
    this.#hfEndpoint = `${endpoint.origin}${endpoint.pathname.replace(/\/+$/, "")}`;
    this.#hfToken = options.hfToken ? options.hfToken : null;
    this.#harnesses = options.harnesses;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#maxRedirects = options.maxRedirects ?? 10;
    this.#cacheEntries = options.cacheEntries ?? 64;
    this.#remoteTtlMs = options.remoteTtlMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#slots = new Slots(options.concurrentReads ?? 4);
  }

  async estimate(request: EstimateRequest): Promise<EstimateAnswer> {
    const checked = checkRequest(request, this.#harnesses, 0);
    if (checked.kind === "reject") throw checked.error;
    const harness = this.#harnesses.get(request.harness) as Harness;
    if (checked.spec.tensor_parallel > MAX_GPUS) {
      throw new NeuronError(
        "invalid_request_error",
        `tensor_parallel: a load spans at most ${MAX_GPUS} GPUs`,
        { param: "tensor_parallel" },
      );
    }
    // A load that names no devices gets GPUs picked for it (as many as tensor_parallel); the
    // estimate answers for that load. Named devices, none included, are taken as they are.
    const spec =
      request.devices === undefined
        ? {
            ...checked.spec,
            devices: Array.from({ length: checked.spec.tensor_parallel }, (_, index) => index),
          }
        : checked.spec;
    const shaped = launchShape(harness, spec);
    if (shaped.kind === "invalid") {
      throw new NeuronError("invalid_request_error", shaped.reason, { param: "args" });
    }
    if (shaped.kind === "reject") throw notEstimable(shaped.reason);
    const parsed = parseSource(spec.source, {
      modelsDir: this.#modelsDir,
      hfEndpoint: this.#hfEndpoint,
    });
    if (parsed.kind === "reject") throw refuse(parsed.message);
    if (parsed.kind === "passthrough") {
      throw notEstimable(
        `source "${spec.source}" is a whole repository, not a GGUF file; name a file in it or declare vram_mb`,
      );
    }
    const known = await this.#knownFor(parsed, spec.source);
    const estimate = estimateVram(known.facts, shaped.shape);
    if (estimate.kind === "reject") throw notEstimable(estimate.reason);
    return { vram_mb: estimate.vram_mb, breakdown: estimate.breakdown, basis: known.basis };
  }

  /**
   * The facts of the file `parsed` names. A local source must exist here (404 otherwise: another
   * node may hold it); a download already on disk is read there, else from its URL.
   */
  async #knownFor(
    parsed: Exclude<ParsedSource, { kind: "reject" | "passthrough" }>,
    source: string,
  ): Promise<Known> {
    const root = await this.#root();
    if (parsed.kind === "local") {
      const file = await this.#fileAt(root, parsed.path, source);
      if (file === null) {
        throw new NeuronError(
          "not_found",
          `model file ${parsed.path} does not exist on this node; put the model there or fix the source "${source}"`,
          { param: "source" },
        );
      }
      return this.#cached(fileKey(file), () => this.#readFile(file.path, "local file"));
    }
    const file = await this.#fileAt(root, parsed.target, parsed.display);
    return file === null
      ? this.#cached(`remote ${parsed.url}`, () => this.#readRemote(parsed))
      : this.#cached(fileKey(file), () => this.#readFile(file.path, "downloaded file"));
  }

  /** The cached facts under `key`, or one `read` shared by every caller until it settles. */
  #cached(key: string, read: () => Promise<Known>): Promise<Known> {
    const cached = this.#known.get(key);
    if (cached !== undefined && cached.expiresAt > this.#now()) {
      this.#known.delete(key);
      this.#known.set(key, cached);
      return Promise.resolve(cached);
    }
    const running = this.#reading.get(key);
    if (running !== undefined) return running;
    const reading = this.#slots
      .run(read)
      .then((known) => this.#remember(key, known))
      .finally(() => this.#reading.delete(key));
    this.#reading.set(key, reading);
    return reading;
  }

  /** Caches `known` as the most recent entry, dropping the least recent ones past the bound. */
  #remember(key: string, known: Known): Known {
    this.#known.delete(key);
    this.#known.set(key, known);
    for (const oldest of this.#known.keys()) {
      if (this.#known.size <= this.#cacheEntries) break;
      this.#known.delete(oldest);
    }
    return known;
  }

  /** models_dir with symlinks resolved; a missing one holds no files. */
  async #root(): Promise<string> {
    try {
      return await realpath(this.#modelsDir);
    } catch (error) {
      if (isMissing(error)) return this.#modelsDir;
      throw error;
    }
  }

  /**
   * The file at `path` (symlinks resolved) when it exists; null when it does not. Refused when a
   * symlink leads out of models_dir; not estimable when it is a folder.
   */
  async #fileAt(root: string, path: string, source: string): Promise<LocalFile | null> {
    let real: string;
    try {
      real = await realpath(path);
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
    if (!isInside(root, real)) {
      throw refuse(
        `source "${source}" leads through a symlink to ${real}, outside models_dir (${this.#modelsDir}); move the file into models_dir`,
      );
    }
    const info = await stat(real);
    if (!info.isFile()) throw notEstimable(`source "${source}" is a folder, not a GGUF file`);
    return { path: real, size: info.size, mtimeMs: info.mtimeMs };
  }

  async #readFile(path: string, what: string): Promise<Known> {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      return this.#factsFrom(await readGgufHeader(fileReader(handle, size)), what, Infinity);
    } finally {
      await handle.close();
    }
  }

  async #readRemote(parsed: Download): Promise<Known> {
    const file: RemoteFile = {
      url: parsed.url,
      display: parsed.display,
      headers:
        parsed.hf && this.#hfToken !== null ? { authorization: `Bearer ${this.#hfToken}` } : {},
      maxRedirects: this.#maxRedirects,
      hint: (status) => this.#hint(parsed, status),
      signal: AbortSignal.timeout(this.#timeoutMs),
    };
    const read = await readGgufHeader(remoteReader(file));
    return this.#factsFrom(read, "HTTP range reads", this.#now() + this.#remoteTtlMs);
  }

  #factsFrom(read: HeaderRead, what: string, expiresAt: number): Known {
    const facts = factsOf(read.header);
    if (facts.kind === "reject") throw notEstimable(facts.reason);
    return {
      facts: facts.facts,
      basis: `gguf header (${what}, ${mib(read.bytesRead)})`,
      expiresAt,
    };
  }

  #hint(parsed: Download, status: number): string {
    if (status === 401 || status === 403) {
      if (!parsed.hf) return "; the server wants credentials, which only hf: sources get";
      return this.#hfToken !== null
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
 * The node's estimator over its models_dir, hf_endpoint and token (the same the preparer uses)
 * and its harnesses. Answers are computed from cached header facts: a file's are kept while its
 * size and mtime stay the same, a remote file's for `remoteTtlMs`, at most `cacheEntries` of them.
 */
export const modelEstimator = (options: EstimatorOptions): ModelEstimator =>
  new SourceEstimator(options);
