import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type CatalogueEntry, CatalogueFile, formatPath, problemsOf } from "@cortex/protocol";
import { isMap, LineCounter, parseDocument } from "yaml";
import { type Catalogue, createCatalogue } from "./rules.js";

/** One thing wrong with the catalogue, precise enough for an operator to fix it. */
export interface CatalogueProblem {
  readonly file: string;
  /** Dotted path inside the file, e.g. `models[2].vram_mb`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** Where an entry is written: its file, and its index in that file's `models` list. */
export interface EntryOrigin {
  readonly file: string;
  readonly index: number;
}

/**
 * The catalogue as its files say it: the entries as written (`vram_mb` optional), and where each
 * one is, so a problem found later (cortex cannot estimate an entry's memory) names its place.
 */
export interface CatalogueEntries extends Catalogue<CatalogueEntry> {
  readonly origins: ReadonlyMap<string, EntryOrigin>;
}

export type CatalogueResult =
  | { readonly ok: true; readonly catalogue: CatalogueEntries; readonly files: string[] }
  | { readonly ok: false; readonly problems: CatalogueProblem[] };

/** The models of one valid file, as `checkCatalogue` needs them to name locations. */
export interface CatalogueFileModels {
  readonly file: string;
  readonly models: readonly CatalogueEntry[];
}

/** Builds the lookups of checked files' entries, remembering where each entry is written. */
export const createEntries = (files: readonly CatalogueFileModels[]): CatalogueEntries => {
  const origins = new Map<string, EntryOrigin>();
  for (const { file, models } of files)
    models.forEach((model, index) => {
      if (!origins.has(model.id)) origins.set(model.id, { file, index });
    });
  return { ...createCatalogue(files.flatMap((entry) => entry.models)), origins };
};

/**
 * A problem with one field of an entry, at the place the entry is written (the catalogue's
 * path `fallbackFile` when the entry is unknown).
 */
export const entryProblem = (
  entries: CatalogueEntries,
  id: string,
  field: string,
  message: string,
  fallbackFile = "",
): CatalogueProblem => {
  const origin = entries.origins.get(id);
  return origin === undefined
    ? { file: fallbackFile, path: `models[id=${id}].${field}`, message }
    : { file: origin.file, path: formatPath(["models", origin.index, field]), message };
};

/** A load result plus a digest of every byte read, so a watcher can tell a no-op event. */
export interface CatalogueSnapshot {
  readonly result: CatalogueResult;
  readonly digest: string;
}

const isCatalogueName = (name: string): boolean =>
  // Dotfiles are editor locks (`.#a.yaml`) and Kubernetes ConfigMap internals (`..data`);
  // reading them would double-count models or fail on dangling links.
  !name.startsWith(".") && (name.endsWith(".yaml") || name.endsWith(".yml"));

const errorCode = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : undefined;

const describeIoError = (error: unknown): string => {
  const code = errorCode(error);
  if (code === "ENOENT") return "no such file or directory";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory, expected a YAML file";
  return error instanceof Error ? error.message : String(error);
};

/** Lists the files to read: the path itself, or the YAML files directly inside it. */
const listFiles = async (
  path: string,
): Promise<{ files: string[]; fromDirectory: boolean } | CatalogueProblem> => {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) return { files: [path], fromDirectory: false };
    const entries = await readdir(path, { withFileTypes: true });
    const names = entries
      // Symlinks count because ConfigMap mounts and hand-made setups link files in.
      .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && isCatalogueName(entry.name))
      .map((entry) => entry.name)
      // Code-unit order, not locale order, so every host reads files in the same sequence.
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { files: names.map((name) => join(path, name)), fromDirectory: true };
  } catch (error) {
    return { file: path, path: "", message: describeIoError(error) };
  }
};

const yamlMessage = (code: string, message: string): string =>
  code === "MULTIPLE_DOCS"
    ? "a catalogue file holds one YAML document; remove the second '---' or move it to its own file"
    : message;

/** Parses and validates one file's text; problems are collected, never thrown. */
const parseFile = (
  file: string,
  text: string,
): { models: CatalogueEntry[] } | { problems: CatalogueProblem[] } => {
  const lineCounter = new LineCounter();
  // `merge` lets operators share defaults with `<<: *anchor` instead of getting "unknown key <<".
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true });
  if (doc.errors.length > 0) {
    return {
      problems: doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return {
          file,
          path: "",
          message: `YAML syntax error at ${line}:${col}: ${yamlMessage(error.code, error.message)}`,
        };
      }),
    };
  }
  // An empty or comments-only file is a valid file with no models.
  if (doc.contents === null) return { models: [] };
  if (!isMap(doc.contents)) {
    return {
      problems: [{ file, path: "", message: "top level must be a mapping with a `models:` list" }],
    };
  }
  const parsed = CatalogueFile.safeParse(doc.toJS());
  if (!parsed.success) {
    return { problems: problemsOf(parsed.error).map((problem) => ({ file, ...problem })) };
  }
  return { models: parsed.data.models };
};

/**
 * Rules that span models and files, which a per-file schema cannot see. Pure, so it is
 * tested without files. Each problem points at the offending entry where it occurs and
 * names the earlier location it collides with.
 */
export const checkCatalogue = (files: readonly CatalogueFileModels[]): CatalogueProblem[] => {
  const problems: CatalogueProblem[] = [];
  const where = (file: string, path: string): string => `${file} ${path}`;

  const ids = new Map<string, { file: string; path: string }>();
  for (const { file, models } of files) {
    models.forEach((model, index) => {
      const path = formatPath(["models", index, "id"]);
      const first = ids.get(model.id);
      if (first) {
        problems.push({
          file,
          path,
          message: `duplicate id "${model.id}": already defined at ${where(first.file, first.path)}`,
        });
      } else {
        ids.set(model.id, { file, path });
      }
    });
  }

  // Aliases are checked after every id is known, so an alias that shadows a model defined
  // in a later file is caught as well as one defined earlier.
  const aliases = new Map<string, { file: string; path: string; modelId: string }>();
  for (const { file, models } of files) {
    models.forEach((model, index) => {
      const seenOnModel = new Set<string>();
      model.aliases.forEach((alias, aliasIndex) => {
        const path = formatPath(["models", index, "aliases", aliasIndex]);
        const idOwner = ids.get(alias);
        if (alias === model.id) {
          problems.push({ file, path, message: `alias "${alias}" repeats this model's own id` });
        } else if (idOwner) {
          problems.push({
            file,
            path,
            message: `alias "${alias}" is the id of another model (${where(idOwner.file, idOwner.path)}); ids always win, so this alias could never resolve to "${model.id}"`,
          });
        } else if (seenOnModel.has(alias)) {
          problems.push({ file, path, message: `alias "${alias}" is listed twice on this model` });
        } else {
          const first = aliases.get(alias);
          if (first) {
            problems.push({
              file,
              path,
              message: `duplicate alias "${alias}": already an alias of "${first.modelId}" at ${where(first.file, first.path)}`,
            });
          } else {
            aliases.set(alias, { file, path, modelId: model.id });
          }
        }
        seenOnModel.add(alias);
      });

      const pinned = new Set<string>();
      model.pinned_on.forEach((node, nodeIndex) => {
        if (pinned.has(node)) {
          problems.push({
            file,
            path: formatPath(["models", index, "pinned_on", nodeIndex]),
            message: `node "${node}" is listed twice in pinned_on`,
          });
        }
        pinned.add(node);
      });
    });
  }
  return problems;
};

/**
 * Reads and validates a catalogue and reports a digest of its bytes. Every file is read and
 * every problem of every file is collected, so one start-up failure lists all that needs fixing.
 */
export const loadCatalogueSnapshot = async (path: string): Promise<CatalogueSnapshot> => {
  const hash = createHash("sha256");
  const listed = await listFiles(path);
  if ("message" in listed) {
    hash.update(`missing\0${listed.message}`);
    return { result: { ok: false, problems: [listed] }, digest: hash.digest("hex") };
  }

  const problems: CatalogueProblem[] = [];
  const valid: CatalogueFileModels[] = [];
  const files: string[] = [];
  for (const file of listed.files) {
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      // A file deleted between listing and reading is simply gone; the deletion itself
      // triggers another reload. A single named file that is missing is a real problem.
      if (listed.fromDirectory && errorCode(error) === "ENOENT") continue;
      const message = describeIoError(error);
      hash.update(`unreadable\0${file}\0${message}\0`);
      problems.push({ file, path: "", message });
      continue;
    }
    hash.update(`${file}\0${text.length}\0${text}\0`);
    files.push(file);
    const parsed = parseFile(file, text);
    if ("problems" in parsed) problems.push(...parsed.problems);
    else valid.push({ file, models: parsed.models });
  }
  // Cross-file rules run over the files that did parse, so their problems are reported
  // together with the syntax and schema problems of the others.
  problems.push(...checkCatalogue(valid));

  const digest = hash.digest("hex");
  if (problems.length > 0) return { result: { ok: false, problems }, digest };
  return { result: { ok: true, catalogue: createEntries(valid), files }, digest };
};

/** Loads one YAML file, or every `*.yaml`/`*.yml` file directly inside a directory. */
export const loadCatalogue = async (path: string): Promise<CatalogueResult> =>
  (await loadCatalogueSnapshot(path)).result;

/** One line per problem, `file: path: message`, for start-up failures and reload errors. */
export const formatProblems = (problems: readonly CatalogueProblem[]): string =>
  problems
    .map(({ file, path, message }) =>
      path === "" ? `${file}: ${message}` : `${file}: ${path}: ${message}`,
    )
    .join("\n");
