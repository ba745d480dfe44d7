import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { urlAllowed } from "./address-policy.js";

/**
 * What a catalogue `source:` string means, decided without touching the disk or the network.
 * A refused source is a value, not an exception: the preparer turns it into a 400 before any
 * eviction, so a bad load changes nothing on the node.
 */
export type ParsedSource =
  /** A file (or model folder) already under models_dir; `path` is absolute and lexically inside. */
  | { readonly kind: "local"; readonly path: string }
  /**
   * A file to download into `target` (absolute, inside models_dir). `display` is the URL without
   * its query string: the only form that may appear in messages (signed URLs carry secrets there).
   * `hf` marks Hugging Face requests, the only ones that get the token.
   */
  | {
      readonly kind: "download";
      readonly url: string;
      readonly display: string;
      readonly target: string;
      readonly hf: boolean;
    }
  /**
   * `hf:owner/repo` without a file: the harness (vLLM, SGLang) fetches the repo itself, given
   * the id `owner/repo`. Harnesses run in an empty working directory of their own (see
   * process-runner.ts), so the id can never resolve to a local folder; harnesses that take a
   * file refuse such a source before anything happens (definitions.ts).
   */
  | { readonly kind: "passthrough"; readonly id: string }
  | { readonly kind: "reject"; readonly message: string };

export interface SourceContext {
  /** Absolute models directory; every file a source names must stay inside it. */
  readonly modelsDir: string;
  /** Base URL `hf:` sources resolve against, without a trailing slash. */
  readonly hfEndpoint: string;
}

/** Owner, repo, revision and file segments of `hf:` sources: what Hugging Face itself allows. */
const HF_SEGMENT = /^[A-Za-z0-9._-]+$/;
const HF_NAME_START = /^[A-Za-z0-9_]/;
const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

const reject = (message: string): ParsedSource => ({ kind: "reject", message });

/** True when `path` lies strictly below `root` (both absolute, already normalised). */
export const isInside = (root: string, path: string): boolean => {
  const rel = relative(root, path);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
};

/** The URL as messages may show it: no credentials, no query, no fragment. */
export const displayUrl = (url: URL): string => `${url.protocol}//${url.host}${url.pathname}`;

/** Only characters safe in a file name on every file system we care about; the rest become `_`. */
const sanitise = (segment: string): string => segment.replace(/[^A-Za-z0-9._-]/g, "_");

const hasDotDot = (path: string): boolean => path.split(/[/\\]/).some((part) => part === "..");

/**
 * The decoded path segments of a URL, checked on the raw text: the WHATWG parser silently
 * resolves `..` and `%2e%2e`, so `https://h/a/%2e%2e/b` would otherwise pass as `/b`.
 * Returns a message instead when a segment is a dot segment, badly encoded, or hides a separator.
 */
const rawSegments = (source: string): string[] | string => {
  const afterScheme = source.slice(source.indexOf("//") + 2);
  const pathStart = afterScheme.search(/[/\\?#]/);
  const raw = pathStart === -1 ? "" : afterScheme.slice(pathStart).split(/[?#]/, 1)[0];
  const segments: string[] = [];
  for (const part of (raw ?? "").split(/[/\\]/)) {
    if (part === "") continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return `the path segment "${part}" is not valid percent-encoding`;
    }
    if (decoded === "." || decoded === "..") return "the path must not contain . or .. segments";
    if (/[/\\\0]/.test(decoded)) {
      return `the path segment "${part}" encodes a separator or a NUL byte`;
    }
    segments.push(decoded);
  }
  return segments;
};

const parsePath = (source: string, context: SourceContext): ParsedSource => {
  if (hasDotDot(source)) {
    return reject(`source "${source}" must not contain a .. segment; name a file under models_dir`);
  }
  const path = isAbsolute(source) ? resolve(source) : resolve(context.modelsDir, source);
  if (!isInside(context.modelsDir, path)) {
    return reject(
      `source "${source}" is outside models_dir (${context.modelsDir}); move the file there or use a relative path`,
    );
  }
  return { kind: "local", path };
};

const parseFileUrl = (source: string, context: SourceContext): ParsedSource => {
  const segments = rawSegments(source);
  if (typeof segments === "string") return reject(`source "${source}": ${segments}`);
  let path: string;
  try {
    // Refuses a remote host (file://server/share) and encoded separators on its own.
    path = fileURLToPath(source);
  } catch (error) {
    return reject(`source "${source}" is not a usable file URL: ${(error as Error).message}`);
  }
  if (path.includes("\0")) return reject(`source "${source}" contains a NUL byte`);
  return parsePath(path, context);
};

const parseHttpUrl = (source: string, context: SourceContext): ParsedSource => {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return reject(`source "${source}" is not a valid URL`);
  }
  // The rules every download URL is held to, redirects included (address-policy.ts): no
  // credentials (they would end up in logs), plain http only to loopback, never 0.0.0.0 or ::.
  // Checked here, before anything is evicted.
  const verdict = urlAllowed(url);
  if (!verdict.allowed) return reject(`source ${displayUrl(url)} is refused: ${verdict.reason}`);
  const segments = rawSegments(source);
  if (typeof segments === "string") return reject(`source ${displayUrl(url)}: ${segments}`);
  if (segments.length === 0 || /[/\\]$/.test(url.pathname)) {
    return reject(`source ${displayUrl(url)} names no file; give the URL of the file to download`);
  }
  const target = join(
    context.modelsDir,
    "downloads",
    sanitise(url.host),
    ...segments.map(sanitise),
  );
  if (!isInside(context.modelsDir, target)) {
    return reject(`source ${displayUrl(url)} would be stored outside models_dir`);
  }
  url.hash = "";
  return { kind: "download", url: url.href, display: displayUrl(url), target, hf: false };
};

interface HfParts {
  readonly owner: string;
  readonly repo: string;
  readonly revision: string | null;
  readonly file: readonly string[];
}

const HF_USAGE = "write hf:owner/repo[@revision]/path/to/file.gguf, or hf:owner/repo for the repo";

/** The parts of an `hf:` source, or why it is refused. */
const splitHf = (source: string): HfParts | string => {
  const [owner, repoAndRev, ...file] = source.slice("hf:".length).split("/");
  if (owner === undefined || repoAndRev === undefined) {
    return `source "${source}" names no repository; ${HF_USAGE}`;
  }
  const at = repoAndRev.indexOf("@");
  const repo = at === -1 ? repoAndRev : repoAndRev.slice(0, at);
  const revision = at === -1 ? null : repoAndRev.slice(at + 1);
  const bad = [owner, repo, ...(revision === null ? [] : [revision]), ...file].find(
    (segment) => !HF_SEGMENT.test(segment) || segment === "." || segment === "..",
  );
  if (bad !== undefined) {
    return `source "${source}" has an invalid segment "${bad}" (letters, digits, - _ . only, no . or ..); ${HF_USAGE}`;
  }
  // Hugging Face names never start with '-' or '.'; refusing them here also means a repository
  // id handed to a harness as an argument can never read as an option (`--help/x`).
  const odd = [owner, repo].find((name) => !HF_NAME_START.test(name));
  if (odd !== undefined) {
    return `source "${source}": "${odd}" must start with a letter, a digit or _; ${HF_USAGE}`;
  }
  return { owner, repo, revision, file };
};

/**
 * The repository an `hf:` source names (`owner/repo`) and whether the source is that whole
 * repository rather than a file in it; null for any other source, or an `hf:` source that
 * parseSource refuses.
 */
export const hfRepositoryOf = (
  source: string,
): { readonly repo: string; readonly whole: boolean } | null => {
  if (!source.startsWith("hf:")) return null;
  const parts = splitHf(source);
  if (typeof parts === "string") return null;
  return { repo: `${parts.owner}/${parts.repo}`, whole: parts.file.length === 0 };
};

const parseHf = (source: string, context: SourceContext): ParsedSource => {
  const parts = splitHf(source);
  if (typeof parts === "string") return reject(parts);
  const { owner, repo, revision, file } = parts;
  if (file.length === 0) {
    if (revision !== null) {
      // A pass-through id cannot carry a revision; silently dropping it would load another one.
      return reject(
        `source "${source}" pins a revision but names no file; drop @${revision} and pass the revision in the harness args, or name a file`,
      );
    }
    return { kind: "passthrough", id: `${owner}/${repo}` };
  }
  const rev = revision ?? "main";
  const url = new URL(
    `${context.hfEndpoint}/${owner}/${repo}/resolve/${rev}/${file.map(encodeURIComponent).join("/")}`,
  );
  const target = join(context.modelsDir, "hf", owner, repo, rev, ...file);
  return { kind: "download", url: url.href, display: displayUrl(url), target, hf: true };
};

/**
 * Parses one catalogue source. Forms: a path (relative to models_dir, or absolute inside it),
 * `file:///abs/path`, `https://host/path` (http only for loopback), `hf:owner/repo[@rev]/file`
 * and `hf:owner/repo` (the repository id `owner/repo`, for harnesses that fetch it themselves).
 * A string is a URL only when it has `scheme://` or starts with `hf:`; `model:v1.gguf` is a
 * relative path.
 */
export const parseSource = (source: string, context: SourceContext): ParsedSource => {
  if (source === "") return reject("source is empty; name a file under models_dir or a URL");
  if (source.includes("\0")) return reject("source contains a NUL byte");
  if (source.startsWith("hf:")) return parseHf(source, context);
  const scheme = URL_SCHEME.exec(source)?.[1]?.toLowerCase();
  if (scheme === undefined) return parsePath(source, context);
  if (scheme === "file") return parseFileUrl(source, context);
  if (scheme === "https" || scheme === "http") return parseHttpUrl(source, context);
  return reject(
    `source scheme "${scheme}:" is not supported; use a path, file://, https:// or hf:owner/repo/file`,
  );
};
