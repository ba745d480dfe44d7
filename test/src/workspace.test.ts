import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// Conventions every package must keep so `turbo run` reaches all of them and imports resolve
// the same way in tests (TypeScript sources) and at run time (compiled dist/).

const root = fileURLToPath(new URL("../../", import.meta.url));
const read = (path: string): string => readFileSync(`${root}${path}`, "utf8");

interface PackageJson {
  name: string;
  type?: string;
  scripts?: Record<string, string>;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const workspaceDirs = (["apps", "packages"] as const).flatMap((group) =>
  existsSync(`${root}${group}`)
    ? readdirSync(`${root}${group}`, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => `${group}/${entry.name}`)
    : [],
);
const packages = [...workspaceDirs, "test"].map((dir) => ({
  dir,
  json: JSON.parse(read(`${dir}/package.json`)) as PackageJson,
}));

describe("workspace layout", () => {
  it.each([
    "package.json",
    "pnpm-workspace.yaml",
    "turbo.json",
    "README.md",
    ".ci/run",
    "apps",
    "packages",
    "catalogue",
    "test",
  ])("has %s at the top level", (path) => {
    expect(existsSync(`${root}${path}`)).toBe(true);
  });

  it("lists every package folder in pnpm-workspace.yaml", () => {
    const workspace = parse(read("pnpm-workspace.yaml")) as { packages: string[] };
    expect(workspace.packages).toEqual(expect.arrayContaining(["apps/*", "packages/*", "test"]));
  });

  it("starts the README with a quickstart whose test command is the one .ci/run runs", () => {
    const readme = read("README.md");
    const quickstart = readme.slice(readme.indexOf("## Quickstart"));
    const open = quickstart.indexOf("```");
    const block = quickstart.slice(open, quickstart.indexOf("```", open + 3));
    const commands = block.split("\n").filter((line) => /^npx /.test(line));
    const testCommand = commands.find((command) => command.endsWith(" test"));
    expect(testCommand).toBeDefined();
    expect(read(".ci/run")).toContain(`\n${testCommand}\n`);
    // Exactly two commands: the demo first, then the tests.
    expect(commands).toHaveLength(2);
    expect(commands[0]).toMatch(/ demo$/);
    expect(commands[1]).toBe(testCommand);
    const root = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
    expect(root.scripts.demo).toContain("scripts/demo.mjs");
  });
});

describe("the newcomer's path", () => {
  const rootJson = JSON.parse(read("package.json")) as { scripts: Record<string, string> };

  it("runs cortexctl from the root as `pnpm cortexctl`, on the bin cortex declares", () => {
    const cortex = JSON.parse(read("apps/cortex/package.json")) as { bin: Record<string, string> };
    const bin = cortex.bin.cortexctl?.replace(/^\.\//, "");
    expect(bin).toBeDefined();
    expect(rootJson.scripts.cortexctl).toBe(`node apps/cortex/${bin}`);
    for (const doc of ["README.md", "apps/cortex/README.md"])
      expect(read(doc), doc).toContain("pnpm cortexctl");
  });

  it("names every package and app in the README's folder table", () => {
    const readme = read("README.md");
    const table = readme.slice(readme.indexOf("| folder"));
    for (const dir of workspaceDirs) expect(table, dir).toContain(`| \`${dir}/\``);
  });

  it("describes the apps in apps/README.md as they are, not as coming", () => {
    const text = read("apps/README.md");
    expect(text).not.toMatch(/coming/i);
    for (const dir of workspaceDirs.filter((d) => d.startsWith("apps/")))
      expect(text, dir).toContain(`${dir.slice("apps/".length)}/`);
  });

  it("tells turbo that a build writing nothing has no outputs (no warning on every build)", () => {
    const turbo = JSON.parse(read("turbo.json")) as {
      tasks: Record<string, { outputs?: string[] }>;
    };
    for (const { json } of packages) {
      const build = json.scripts?.build ?? "";
      // A typecheck only: `tsc … --noEmit` and nothing after it.
      if (!/^tsc [^&]*--noEmit$/.test(build)) continue;
      expect(turbo.tasks[`${json.name}#build`]?.outputs, json.name).toEqual([]);
    }
  });
});

describe.each(packages)("$dir", ({ dir, json }) => {
  it("is an ESM package in the @cortex scope", () => {
    expect(json.name).toMatch(/^@cortex\//);
    expect(json.type).toBe("module");
  });

  it("has the shared script names", () => {
    expect(Object.keys(json.scripts ?? {})).toEqual(
      expect.arrayContaining(["build", "typecheck", "lint", "test"]),
    );
  });

  it("pins exact dependency versions (workspace packages aside)", () => {
    const all = { ...json.dependencies, ...json.devDependencies };
    for (const [name, version] of Object.entries(all)) {
      if (version.startsWith("workspace:")) continue;
      expect(version, `${dir}: ${name}@${version}`).toMatch(/^\d+\.\d+\.\d+$/);
    }
  });

  it("exports a source, types and default entry for every subpath", () => {
    if (dir === "test" || dir.startsWith("apps/")) return;
    for (const [subpath, target] of Object.entries(json.exports ?? {})) {
      if (subpath.endsWith(".json")) continue;
      expect(target, `${dir} ${subpath}`).toMatchObject({
        source: expect.stringMatching(/^\.\/src\/.+\.ts$/),
        types: expect.stringMatching(/^\.\/dist\/.+\.d\.ts$/),
        default: expect.stringMatching(/^\.\/dist\/.+\.js$/),
      });
    }
  });
});
