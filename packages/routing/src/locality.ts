import type { FleetNode, HeldSources, ModelProfile } from "@cortex/protocol";

// Weights where they already are: which file on a node a catalogue source names, and whether
// the node's last discovery lists it. The mapping mirrors the neuron's own (apps/neuron
// src/sources/parse-source.ts), and a neuron test checks the two agree source by source.

/**
 * The file a source names on a node, relative to its models_dir with `/` separators. `path`:
 * the file (or model folder) must already be there (a path or `file://` source); `download`:
 * the neuron fetches it there when missing (`hf:owner/repo/file`, `https://`).
 */
export interface SourceFile {
  readonly kind: "path" | "download";
  readonly key: string;
}

/** Whether a node holds a model's weights: `unknown` when it does not say (older neuron). */
export type Holding = "held" | "missing" | "unknown";

const URL_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
/** Owner, repo, revision and file segments of `hf:` sources: what Hugging Face itself allows. */
const HF_SEGMENT = /^[A-Za-z0-9._-]+$/;
const HF_NAME_START = /^[A-Za-z0-9_]/;

/** The neuron's file-name rule for downloads: anything outside this alphabet becomes `_`. */
const sanitise = (segment: string): string => segment.replace(/[^A-Za-z0-9._-]/g, "_");

/** Path segments with empty and `.` ones dropped, or null when one is `..` (the neuron refuses). */
const segmentsOf = (path: string): string[] | null => {
  if (path.split(/[/\\]/).some((part) => part === "..")) return null;
  return path.split("/").filter((part) => part !== "" && part !== ".");
};

/** A path source as the neuron reads it: relative to models_dir, or absolute inside it. */
const pathKey = (path: string, modelsDir: string): string | null => {
  const segments = segmentsOf(path);
  if (segments === null) return null;
  if (!path.startsWith("/")) return segments.length === 0 ? null : segments.join("/");
  const root = segmentsOf(modelsDir);
  if (root === null || !modelsDir.startsWith("/")) return null;
  if (segments.length <= root.length) return null;
  for (let i = 0; i < root.length; i += 1) if (segments[i] !== root[i]) return null;
  return segments.slice(root.length).join("/");
};

/**
 * The decoded path segments of a URL's raw text (the WHATWG parser would resolve `..` on its
 * own), or null when one is a dot segment, badly encoded, or hides a separator or a NUL.
 */
const rawSegments = (source: string): string[] | null => {
  const afterScheme = source.slice(source.indexOf("//") + 2);
  const pathStart = afterScheme.search(/[/\\?#]/);
  const raw = pathStart === -1 ? "" : (afterScheme.slice(pathStart).split(/[?#]/, 1)[0] ?? "");
  const segments: string[] = [];
  for (const part of raw.split(/[/\\]/)) {
    if (part === "") continue;
    let decoded: string;
    try {
      decoded = decodeURIComponent(part);
    } catch {
      return null;
    }
    if (decoded === "." || decoded === ".." || /[/\\\0]/.test(decoded)) return null;
    segments.push(decoded);
  }
  return segments;
};

const fileUrlKey = (source: string, modelsDir: string): string | null => {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return null;
  }
  // The neuron reads local files only: file://server/share is refused there.
  if (url.hostname !== "" && url.hostname !== "localhost") return null;
  const segments = rawSegments(source);
  if (segments === null) return null;
  return pathKey(`/${segments.join("/")}`, modelsDir);
};

const httpKey = (source: string): string | null => {
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return null;
  }
  const segments = rawSegments(source);
  if (segments === null || segments.length === 0 || /[/\\]$/.test(url.pathname)) return null;
  return ["downloads", sanitise(url.host), ...segments.map(sanitise)].join("/");
};

/** `hf:owner/repo[@rev]/file` → `hf/owner/repo/rev/file`; null for a repository id or a bad one. */
const hfKey = (source: string): string | null => {
  const [owner, repoAndRev, ...file] = source.slice("hf:".length).split("/");
  if (owner === undefined || repoAndRev === undefined || file.length === 0) return null;
  const at = repoAndRev.indexOf("@");
  const repo = at === -1 ? repoAndRev : repoAndRev.slice(0, at);
  const revision = at === -1 ? "main" : repoAndRev.slice(at + 1);
  const parts = [owner, repo, revision, ...file];
  if (parts.some((part) => !HF_SEGMENT.test(part) || part === "." || part === "..")) return null;
  if (!HF_NAME_START.test(owner) || !HF_NAME_START.test(repo)) return null;
  return ["hf", ...parts].join("/");
};

/**
 * The file `source` names on a node whose models_dir is `modelsDir`, or null when it names none
 * cortex can look for: `hf:owner/repo` (the harness fetches the repository itself), another
 * scheme, or a source the neuron would refuse anyway (it says why when asked to load it).
 */
export const sourceFile = (source: string, modelsDir: string): SourceFile | null => {
  if (source === "" || source.includes("\0")) return null;
  if (source.startsWith("hf:")) {
    const key = hfKey(source);
    return key === null ? null : { kind: "download", key };
  }
  const scheme = URL_SCHEME.exec(source)?.[1]?.toLowerCase();
  let key: string | null;
  if (scheme === undefined) key = pathKey(source, modelsDir);
  else if (scheme === "file") key = fileUrlKey(source, modelsDir);
  else if (scheme === "http" || scheme === "https") {
    const download = httpKey(source);
    return download === null ? null : { kind: "download", key: download };
  } else return null;
  return key === null ? null : { kind: "path", key };
};

interface HeldIndex {
  readonly files: ReadonlySet<string>;
  /** Every folder that holds a listed file, at any depth: a folder source is held when listed. */
  readonly folders: ReadonlySet<string>;
}

const indexed = new WeakMap<HeldSources, HeldIndex>();

/** Lookups over one discovery's list, built once per (immutable) answer. */
const indexOf = (sources: HeldSources): HeldIndex => {
  const cached = indexed.get(sources);
  if (cached) return cached;
  const files = new Set<string>();
  const folders = new Set<string>();
  for (const file of sources.files) {
    files.add(file.path);
    for (let cut = file.path.lastIndexOf("/"); cut > 0; cut = file.path.lastIndexOf("/", cut - 1))
      folders.add(file.path.slice(0, cut));
  }
  const index = { files, folders };
  indexed.set(sources, index);
  return index;
};

/**
 * Whether `node` holds the file `source` names, by its last discovery. `unknown` when the node
 * does not report its files (an older neuron, or not discovered yet), when the source names no
 * file cortex can look for, or when the node's list is incomplete and does not have it.
 */
export const holding = (node: FleetNode, source: string): Holding => {
  const sources = node.sources;
  if (sources === undefined) return "unknown";
  const file = sourceFile(source, sources.models_dir);
  if (file === null) return "unknown";
  const index = indexOf(sources);
  if (index.files.has(file.key)) return "held";
  // A path source may name a model folder (vLLM): it is there when a file below it is listed.
  if (file.kind === "path" && index.folders.has(file.key)) return "held";
  return sources.complete ? "missing" : "unknown";
};

/**
 * Why the model cannot load on the node for want of its weights, or null: a `path` source is
 * read from the node's disk and is never downloaded, so a node known not to hold it is out.
 */
export const missingWeights = (model: ModelProfile, node: FleetNode): string | null => {
  if (holding(node, model.source) !== "missing") return null;
  const file = node.sources ? sourceFile(model.source, node.sources.models_dir) : null;
  return file?.kind === "path" ? `does not hold "${model.source}" under its models_dir` : null;
};

/** True when a cold load of the model on the node needs no download: it holds the weights. */
export const holdsWeights = (model: ModelProfile, node: FleetNode): boolean =>
  holding(node, model.source) === "held";
