import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The architecture, executable: which package may import which, read from the imports of every
// source file (tests and fixtures apart, which may use testkit), and no runtime dependency that
// nothing imports.

const root = fileURLToPath(new URL("../../", import.meta.url));

interface Source {
  /** Relative to the repository root. */
  readonly path: string;
  readonly imports: readonly string[];
}

interface Workspace {
  readonly dir: string;
  readonly name: string;
  readonly dependencies: readonly string[];
  readonly sources: readonly Source[];
}

/** `import … from "x"`, `export … from "x"`, `import("x")` and `require.resolve("x")`. */
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\("([^"]+)"\)|\.resolve\("([^"]+)"\)/g;

const filesUnder = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) return entry.name === "node_modules" ? [] : filesUnder(path);
        return /\.(ts|tsx|mjs)$/.test(entry.name) && !entry.name.endsWith(".d.ts") ? [path] : [];
      })
    : [];

const importsOf = (text: string): string[] =>
  [...text.matchAll(IMPORT)].map((match) => match[1] ?? match[2] ?? match[3] ?? "");

const workspaces: Workspace[] = ["apps", "packages"]
  .flatMap((group) =>
    readdirSync(join(root, group), { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => `${group}/${entry.name}`),
  )
  .concat("test")
  .map((dir) => {
    const json = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8")) as {
      name: string;
      dependencies?: Record<string, string>;
    };
    return {
      dir,
      name: json.name,
      dependencies: Object.keys(json.dependencies ?? {}),
      sources: [...filesUnder(join(root, dir, "src")), ...filesUnder(join(root, dir, "scripts"))]
        .concat(
          ["vite.config.ts", "vitest.config.ts"]
            .map((file) => join(root, dir, file))
            .filter((file) => existsSync(file)),
        )
        .map((file) => ({
          path: relative(root, file),
          imports: importsOf(readFileSync(file, "utf8")),
        })),
    };
  });

const byName = (name: string): Workspace => {
  const found = workspaces.find((workspace) => workspace.name === name);
  if (!found) throw new Error(`no workspace package ${name}`);
  return found;
};

/** Tests and their fixtures: they may import testkit and each other's helpers. */
const isTestFile = (path: string): boolean =>
  /\.(test|int\.test|e2e\.test)\.tsx?$/.test(path) || /\.fixtures\.ts$/.test(path);

/** The package an import names (`@cortex/http-kit/x` → `@cortex/http-kit`, `node:fs` → itself). */
const packageOf = (specifier: string): string =>
  specifier.startsWith("@")
    ? specifier.split("/").slice(0, 2).join("/")
    : (specifier.split("/")[0] ?? specifier);

/** Every `package` imported by the non-test sources of `workspace`, with where. */
const edges = (workspace: Workspace, include = (path: string) => !isTestFile(path)) =>
  workspace.sources
    .filter((source) => include(source.path))
    .flatMap((source) =>
      source.imports
        .filter((specifier) => !specifier.startsWith("."))
        .map((specifier) => ({ from: source.path, to: packageOf(specifier) })),
    );

const workspaceImports = (workspace: Workspace) =>
  edges(workspace).filter((edge) => edge.to.startsWith("@cortex/"));

describe("package boundaries", () => {
  it("cortex and the neuron never import each other", () => {
    expect(
      workspaceImports(byName("@cortex/cortex")).filter((e) => e.to === "@cortex/neuron"),
    ).toEqual([]);
    expect(
      workspaceImports(byName("@cortex/neuron")).filter((e) => e.to === "@cortex/cortex"),
    ).toEqual([]);
    // Nor reach into each other by relative path.
    for (const [from, other] of [
      ["@cortex/cortex", "neuron"],
      ["@cortex/neuron", "cortex"],
    ] as const)
      for (const source of byName(from).sources)
        expect(source.imports.filter((s) => s.includes(`apps/${other}/`))).toEqual([]);
  });

  it("the protocol imports no workspace package: it is the contract the others share", () => {
    expect(workspaceImports(byName("@cortex/protocol"))).toEqual([]);
  });

  // Reading files, the environment and the command line lives in @cortex/config-file, which
  // only the apps use: the contract stays schemas, loadable anywhere zod runs.
  it("the protocol depends on zod alone at run time", () => {
    expect(byName("@cortex/protocol").dependencies).toEqual(["zod"]);
  });

  it("the config loader builds on the protocol only, and only the apps use it", () => {
    expect(
      workspaceImports(byName("@cortex/config-file")).filter((e) => e.to !== "@cortex/protocol"),
    ).toEqual([]);
    const users = workspaces
      .filter((workspace) => !["@cortex/cortex", "@cortex/neuron"].includes(workspace.name))
      .flatMap((workspace) => workspaceImports(workspace))
      .filter((edge) => edge.to === "@cortex/config-file");
    expect(users).toEqual([]);
  });

  // Routing decides with the catalogue's pure rules (feasibility, aliases): that edge is fine.
  it("routing is pure: no app, no I/O (its benchmark runner apart)", () => {
    const routing = byName("@cortex/routing");
    const io = /^(node:)?(fs|fs\/promises|http|https|net|dgram|child_process|worker_threads)$/;
    const found = edges(routing, (path) => !isTestFile(path) && !path.includes("/src/bench/"));
    expect(
      found.filter(
        (edge) =>
          edge.to.startsWith("@cortex/") &&
          edge.to !== "@cortex/protocol" &&
          edge.to !== "@cortex/catalogue",
      ),
    ).toEqual([]);
    expect(found.filter((edge) => io.test(edge.to))).toEqual([]);
  });

  it("testkit is imported by tests, fixtures, the e2e support and the benchmarks only", () => {
    const allowed = new Set(["@cortex/testkit", "@cortex/bench", "@cortex/e2e"]);
    const offenders = workspaces
      .filter((workspace) => !allowed.has(workspace.name))
      .flatMap((workspace) => workspaceImports(workspace))
      .filter((edge) => edge.to === "@cortex/testkit");
    expect(offenders).toEqual([]);
  });

  it("the apps depend on the packages they are allowed to, and on nothing else of ours", () => {
    // The neuron uses routing's memory arithmetic (`effectiveFree`) so that it judges free GPU
    // memory exactly as cortex's placement does: a deliberate edge, kept.
    const allowed: Record<string, readonly string[]> = {
      "@cortex/neuron": [
        "@cortex/protocol",
        "@cortex/config-file",
        "@cortex/http-kit",
        "@cortex/routing",
        "@cortex/harness-llamacpp",
      ],
      "@cortex/cortex": [
        "@cortex/protocol",
        "@cortex/config-file",
        "@cortex/http-kit",
        "@cortex/routing",
        "@cortex/catalogue",
        // Only to find its built files (require.resolve), which cortex serves at /ui/.
        "@cortex/dashboard",
      ],
      "@cortex/dashboard": ["@cortex/protocol"],
    };
    for (const [name, packages] of Object.entries(allowed)) {
      const used = new Set(workspaceImports(byName(name)).map((edge) => edge.to));
      expect(
        [...used].filter((pkg) => !packages.includes(pkg)),
        name,
      ).toEqual([]);
    }
  });
});

describe("dependencies", () => {
  it.each(workspaces.map((workspace) => [workspace.name, workspace] as const))(
    "%s imports every runtime dependency it declares",
    (_name, workspace) => {
      const imported = new Set(
        workspace.sources.flatMap((source) =>
          source.imports.filter((s) => !s.startsWith(".")).map(packageOf),
        ),
      );
      expect(workspace.dependencies.filter((dependency) => !imported.has(dependency))).toEqual([]);
    },
  );
});
