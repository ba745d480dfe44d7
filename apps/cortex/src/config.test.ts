import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig, redactConfig } from "./config.js";

const EXAMPLE = fileURLToPath(new URL("../cortex.example.yaml", import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cortex-config-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const problemsOf = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError)
      return error.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
    throw error;
  }
  throw new Error("expected a ConfigError");
};

describe("loadConfig", () => {
  it("accepts the documented example", () => {
    const config = loadConfig(EXAMPLE, {});
    expect(config.neurons.map((neuron) => neuron.name)).toEqual(["gpu-a", "gpu-b"]);
    expect(config.unhealthy_after_failures).toBe(3);
  });

  it("lets the environment win, with lists as JSON", () => {
    const config = loadConfig(EXAMPLE, {
      CORTEX_API_KEYS: '["k1","k2"]',
      CORTEX_POLL_INTERVAL_MS: "500",
      CORTEX_LOG_LEVEL: "debug",
    });
    expect(config.api_keys).toEqual(["k1", "k2"]);
    expect(config.poll_interval_ms).toBe(500);
  });

  it("lists every problem at once", async () => {
    const path = join(dir, "bad.yaml");
    await writeFile(
      path,
      [
        "listen: nowhere",
        "neurons:",
        "  - { name: a, url: http://a:1 }",
        "  - { name: a, url: not-a-url }",
        "surprise: 1",
      ].join("\n"),
    );
    const problems = problemsOf(() => loadConfig(path, {}));
    expect(problems).toMatch(/listen/);
    expect(problems).toMatch(/neurons\[1\]\.url|neurons\.1\.url/);
    expect(problems).toMatch(/surprise/);
  });

  it("refuses two neurons with one name", async () => {
    const path = join(dir, "dup.yaml");
    await writeFile(
      path,
      "neurons:\n  - { name: a, url: http://a:1 }\n  - { name: a, url: http://b:1 }\n",
    );
    expect(problemsOf(() => loadConfig(path, {}))).toMatch(/duplicate neuron name "a"/);
  });

  it("takes cors_origins: none by default, origins or *, nothing else", async () => {
    expect(loadConfig(EXAMPLE, {}).cors_origins).toEqual([]);
    const ok = loadConfig(EXAMPLE, {
      CORTEX_CORS_ORIGINS: '["https://app.example.com","http://localhost:5173","*"]',
    });
    expect(ok.cors_origins).toEqual(["https://app.example.com", "http://localhost:5173", "*"]);
    const path = join(dir, "cors.yaml");
    await writeFile(
      path,
      "cors_origins: [https://app.example.com/, app.example.com, 'https://a.example/x', null]\n",
    );
    const problems = problemsOf(() => loadConfig(path, {}));
    for (const index of [0, 1, 2, 3]) expect(problems).toMatch(new RegExp(`cors_origins.${index}`));
  });

  it("redacts keys and tokens", () => {
    const text = JSON.stringify(
      redactConfig(
        loadConfig(EXAMPLE, {
          CORTEX_API_KEYS: '["sk-1"]',
          CORTEX_JOIN_TOKENS: '["join-secret-0123456789"]',
        }),
      ),
    );
    expect(text).not.toContain("change-me");
    expect(text).not.toContain("sk-1");
    expect(text).not.toContain("join-secret");
  });

  it("takes join_tokens: none by default (joining off), each at least 16 characters", () => {
    expect(loadConfig(undefined, {}).join_tokens).toEqual([]);
    expect(
      loadConfig(undefined, { CORTEX_JOIN_TOKENS: '["0123456789abcdef"]' }).join_tokens,
    ).toEqual(["0123456789abcdef"]);
    const problems = problemsOf(() =>
      loadConfig(undefined, { CORTEX_JOIN_TOKENS: '["short", " 0123456789abcdef "]' }),
    );
    expect(problems).toMatch(/join_tokens\[0\]: a join token must be at least 16 characters/);
    expect(problems).toMatch(/join_tokens\[1\]: must not start or end with whitespace/);
  });
});
