import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError, loadConfigFile } from "./config-file.js";

const Schema = z.strictObject({
  name: z.string(),
  port: z.number().int().default(8080),
  tags: z.array(z.string()).default([]),
});

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-file-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const write = (text: string): string => {
  const file = join(dir, "app.yaml");
  writeFileSync(file, text);
  return file;
};

const load = (file: string | undefined, env: Record<string, string> = {}) =>
  loadConfigFile(Schema, { what: "app", file, env, prefix: "APP", notKeys: ["APP_CONFIG"] });

/** The problems of a load that must fail, as `path: message` lines. */
const problems = (run: () => unknown): string[] => {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  throw new Error("expected a ConfigError");
};

describe("loadConfigFile", () => {
  it("reads the file, applies the environment over it and fills defaults", () => {
    const file = write("name: a\nport: 1\n");
    expect(load(file, { APP_PORT: "2", APP_CONFIG: file })).toEqual({
      name: "a",
      port: 2,
      tags: [],
    });
  });

  it("needs no file when the environment has every required key", () => {
    expect(load(undefined, { APP_NAME: "b", APP_TAGS: '["x"]' })).toEqual({
      name: "b",
      port: 8080,
      tags: ["x"],
    });
  });

  it("lists YAML errors, unknown variables and schema violations together", () => {
    const found = problems(() => load(write("name: [\nextra: 1\n"), { APP_NOPE: "1" }));
    expect(found.some((line) => line.startsWith(": YAML: "))).toBe(true);
    expect(found).toContainEqual(expect.stringMatching(/^APP_NOPE: unknown environment variable/));
  });

  it("names every schema problem, unknown keys one by one", () => {
    expect(problems(() => load(write("port: x\nfoo: 1\nbar: 2\n")))).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^name: /),
        expect.stringMatching(/^port: /),
        'foo: unknown key "foo"',
        'bar: unknown key "bar"',
      ]),
    );
  });

  it("refuses a document that is not a mapping, and a file it cannot read", () => {
    expect(problems(() => load(write("- a\n- b\n")))).toContain(": must be a mapping of keys");
    const missing = join(dir, "missing.yaml");
    expect(problems(() => load(missing))).toEqual([
      expect.stringMatching(/^: cannot read: .*ENOENT/),
    ]);
  });

  it("says which configuration and which source failed", () => {
    expect(() => load(undefined)).toThrow(
      /^invalid app configuration \(environment\):\n {2}name: /,
    );
  });
});
