/// <reference lib="dom" />
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FleetSnapshot } from "@cortex/protocol";
import {
  type FakeNeuron,
  gpuDevice,
  neuronModel,
  processesMentioning,
  startFakeNeuron,
  waitFor,
} from "@cortex/testkit";
import OpenAI from "openai";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AppProcess, startCortexProcess, stopApp } from "./support/app-process.js";
import { type NeuronProcess, startTinyNeuron } from "./support/neuron-process.js";

// The dashboard in headless Chromium against the built cortex and two built neurons on
// loopback (plus one fake neuron from @cortex/testkit, which reports GPU utilization and
// temperature the way nvidia-smi would; static devices in neuron.yaml report neither): sign in, see every node and its GPU bars, load a model with the button and watch
// it become loaded without a reload, find the load among the events, open the traffic charts
// (p50/p95/p99 of latency and time to first token, overall and for one model), and save a
// screenshot (test/artifacts/dashboard.png, copied to docs/ for the README).
//
// Chromium is Debian's package (.ci/run installs it); without it the test is skipped.

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM)
  console.warn(
    `dashboard e2e skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );

const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url));
const KEY = "sk-ui";
const ADMIN = "admin-ui";
const NEURON_TOKEN = "neuron-ui";
/** The model the test loads with the button; the others are loaded before the browser opens. */
const LOADED_BY_BUTTON = "qwen3-14b";

// Every model is the tiny test model under a catalogue name, with the memory the real one needs.
const gpuModel = (id: string, vramMb: number, fields: Record<string, unknown> = {}) => ({
  id,
  harness: "llamacpp",
  source: "tiny.gguf",
  vram_mb: vramMb,
  context_length: 256,
  idle_ttl_s: 0,
  ...fields,
});
const CATALOGUE = {
  models: [
    gpuModel("llama-3.1-8b", 9200, { aliases: ["llama"], pinned_on: ["gpu-a"] }),
    gpuModel("mixtral-8x7b", 30_000, { min_devices: 2, pinned_on: ["gpu-a"] }),
    gpuModel(LOADED_BY_BUTTON, 10_400, { aliases: ["qwen"] }),
    gpuModel("gemma-2-27b", 17_000),
    gpuModel("phi-4-mini", 0, { runs_on: "cpu" }),
    gpuModel("llama-3.3-70b", 42_000, { min_devices: 2, pinned_on: ["gpu-c"] }),
  ],
};

const NODES = [
  {
    name: "gpu-a",
    devices: [0, 1].map((index) => ({
      index,
      vendor: "NVIDIA",
      name: "NVIDIA GeForce RTX 4090",
      vram_total_mb: 24_564,
      vram_free_mb: 23_700 - index * 1200,
      bus_id: `0000:0${index + 1}:00.0`,
    })),
  },
  {
    name: "gpu-b",
    devices: [
      // Something else holds 16 GB here: other use beside the model the test loads.
      { vendor: "NVIDIA", name: "NVIDIA L40S", vram_total_mb: 46_068, vram_free_mb: 30_000 },
    ],
  },
];

let dir: string;
let cortex: AppProcess;
const neurons: NeuronProcess[] = [];
let fake: FakeNeuron | undefined;
let browser: Browser | undefined;

/** Retries `check` until its assertion holds: the page updates on its own (SSE and polling). */
const poll = <T>(check: () => Promise<T> | T, timeout = 15_000) =>
  expect.poll(check, { timeout, interval: 100 });

const fleet = async () => FleetSnapshot.parse(await (await cortex.api("/api/fleet")).json());

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  dir = await mkdtemp(join(tmpdir(), "dashboard-e2e-"));
  await mkdir(join(dir, "catalogue"));
  await writeFile(join(dir, "catalogue", "models.yaml"), stringify(CATALOGUE));
  for (const spec of NODES) neurons.push(await startTinyNeuron(dir, spec, NEURON_TOKEN));
  // An 80 GB pair running a 70B model across both GPUs, with 2.3 GB of other use on each.
  const H100 = 81_559;
  fake = await startFakeNeuron({
    name: "gpu-c",
    token: NEURON_TOKEN,
    devices: [
      [71, 63],
      [64, 58],
    ].map(([utilization, temperature], index) =>
      gpuDevice(index, H100, H100 - 21_000 - 2300, {
        name: "NVIDIA H100 80GB HBM3",
        utilization_pct: utilization ?? null,
        temperature_c: temperature ?? null,
      }),
    ),
    models: [
      neuronModel("llama-3.3-70b", {
        devices: [0, 1],
        vram_mb: 42_000,
        loaded_at: new Date().toISOString(),
      }),
    ],
  });
  const fleetNodes = [
    ...neurons.map((neuron, index) => ({ name: NODES[index]?.name, url: neuron.url })),
    { name: fake.name, url: fake.url },
  ];
  cortex = await startCortexProcess({
    dir,
    apiKey: KEY,
    adminToken: ADMIN,
    neurons: fleetNodes.map((node) => ({ ...node, token: NEURON_TOKEN })),
    config: { poll_interval_ms: 500 },
  });
  await waitFor("every neuron healthy in cortex", async () =>
    (await fleet()).nodes.every((node) => node.healthy && node.node !== null),
  );

  // A fleet with something on it: two models on gpu-a (one across both GPUs) and some traffic,
  // including a cold start of the CPU model.
  for (const model of ["llama-3.1-8b", "mixtral-8x7b"]) {
    const answer = await cortex.api("/api/models/load", { body: { model } });
    expect(answer.status, await answer.clone().text()).toBe(200);
  }
  const openai = new OpenAI({ baseURL: `${cortex.url}/v1`, apiKey: KEY, maxRetries: 0 });
  for (const [model, count] of [
    ["phi-4-mini", 4],
    ["llama", 12],
    ["mixtral-8x7b", 6],
    ["llama-3.3-70b", 9],
  ] as const) {
    for (let i = 0; i < count; i += 1) {
      await openai.chat.completions.create({
        model,
        messages: [{ role: "user", content: "Hello" }],
        max_tokens: 4,
      });
    }
  }
  await openai.chat.completions
    .create({ model: "no-such-model", messages: [{ role: "user", content: "Hi" }] })
    .catch(() => {});
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (cortex) await stopApp(cortex);
  for (const neuron of neurons) await stopApp(neuron);
  await fake?.close();
  if (dir) {
    for (const { pid } of processesMentioning(dir)) process.kill(pid, "SIGKILL");
    await rm(dir, { recursive: true, force: true });
  }
});

const launch = async (): Promise<Browser> => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // The CI machine has no network: everything that would reach out is turned off.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  return browser;
};

const signIn = async (page: Page): Promise<void> => {
  await page.goto(`${cortex.url}/ui`);
  await page.getByLabel("Admin token").fill("not-the-token");
  await page.getByTestId("sign-in").click();
  await poll(() => page.getByTestId("login-error").textContent()).toContain("refused");
  await page.getByLabel("Admin token").fill(ADMIN);
  await page.getByTestId("sign-in").click();
  await page.getByTestId("node-card").first().waitFor();
};

describe.skipIf(!HAVE_CHROMIUM)("the dashboard in Chromium", () => {
  it("shows the fleet, loads a model with the button and follows it live", async () => {
    const page = await (await launch()).newPage({ viewport: { width: 1440, height: 900 } });
    const problems: string[] = [];
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // The wrong token and the first look without one are refused on purpose.
      if (message.type() === "error" && !/status of 401/.test(message.text()))
        problems.push(`console: ${message.text()}`);
    });

    await mkdir(ARTIFACTS, { recursive: true });
    await signIn(page);
    // The token lives in this tab's session storage only.
    expect(await page.evaluate(() => sessionStorage.getItem("cortex.adminToken"))).toBe(ADMIN);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);

    // Fleet: every node with its GPUs, the resident models in the bars.
    const cards = page.getByTestId("node-card");
    await poll(() => cards.count()).toBe(3);
    for (const node of ["gpu-a", "gpu-b", "gpu-c"])
      await poll(() =>
        page.locator(`[data-testid=node-card][data-node=${node}]`).textContent(),
      ).toContain("healthy");
    await poll(() => page.getByTestId("gpu-bar").count()).toBe(5);
    const barsOfA = page.locator("[data-node=gpu-a] [data-testid=gpu-bar]");
    await poll(() => barsOfA.nth(0).getAttribute("aria-label")).toMatch(/mixtral-8x7b/);
    await poll(() => barsOfA.nth(1).getAttribute("aria-label")).toMatch(/mixtral-8x7b/);
    await poll(() => barsOfA.nth(0).getAttribute("aria-label")).toMatch(/llama-3\.1-8b/);
    await poll(() =>
      page.locator("[data-node=gpu-b] [data-testid=gpu-bar]").getAttribute("aria-label"),
    ).not.toMatch(new RegExp(LOADED_BY_BUTTON));

    // Utilization and temperature, where the neuron reports them.
    await poll(() =>
      page.locator("[data-testid=gpu][data-node=gpu-c]").first().textContent(),
    ).toMatch(/71 %\s*63 °C/);

    // Models: load one on gpu-b with the button, confirm, and watch it without reloading.
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    await page.getByTestId("tab-models").click();
    const row = page.locator(`[data-testid=model-row][data-model=${LOADED_BY_BUTTON}]`);
    await poll(() => row.getAttribute("data-status")).toBe("available");
    // Signed in with a token: Sign out is offered. The 70B is loaded on gpu-c, the one node of
    // its pinned_on: there is nowhere left to load it.
    expect(await page.getByTestId("sign-out").count()).toBe(1);
    const pinned = page.locator("[data-testid=model-row][data-model='llama-3.3-70b']");
    await poll(() => pinned.getByTestId("load-button").isDisabled()).toBe(true);
    expect(await pinned.getByTestId("last-used").textContent()).not.toContain("never");
    // Every status the row shows from now on, however briefly.
    await page.evaluate((model) => {
      const seen: string[] = [];
      (window as unknown as { statuses: string[] }).statuses = seen;
      const record = () => {
        const status = document
          .querySelector(`[data-testid=model-row][data-model="${model}"]`)
          ?.getAttribute("data-status");
        if (status && seen.at(-1) !== status) seen.push(status);
      };
      new MutationObserver(record).observe(document.body, {
        subtree: true,
        childList: true,
        attributes: true,
      });
    }, LOADED_BY_BUTTON);
    await row.getByTestId("load-button").click();
    const dialog = page.getByTestId("confirm-dialog");
    await dialog.waitFor();
    await dialog.getByTestId("load-node").selectOption("gpu-b");
    await dialog.getByTestId("confirm").click();
    await poll(() => row.getAttribute("data-status"), 60_000).toBe("loaded");
    await poll(() => row.locator("[data-testid=model-state]").first().textContent()).toContain(
      "gpu-b · loaded",
    );
    await poll(() => page.getByTestId("notice").first().textContent()).toContain(
      `${LOADED_BY_BUTTON} loaded on gpu-b`,
    );
    const statuses = await page.evaluate(
      () => (window as unknown as { statuses: string[] }).statuses,
    );
    expect(statuses.at(-1)).toBe("loaded");
    expect(statuses[0]).not.toBe("loaded");
    expect(
      await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded),
    ).toBe(true);
    expect(
      (await fleet()).nodes.find((n) => n.name === "gpu-b")?.models.map((m) => m.id),
    ).toContain(LOADED_BY_BUTTON);

    await page.screenshot({ path: join(ARTIFACTS, "dashboard-models.png") });

    // Events: the load, newest first.
    await page.getByTestId("tab-events").click();
    const events = page.locator("[data-testid=event-list] [data-testid=event]");
    await poll(() =>
      events.filter({ hasText: LOADED_BY_BUTTON }).first().getAttribute("data-type"),
    ).toMatch(/load_finished|model_state/);
    await poll(() =>
      page.locator("[data-type=load_finished]", { hasText: LOADED_BY_BUTTON }).count(),
    ).toBe(1);
    const times = await events
      .locator("time")
      .evaluateAll((nodes) => nodes.map((node) => Date.parse(node.getAttribute("datetime") ?? "")));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-events.png") });

    // Traffic: the request log's numbers and four charts, latency and TTFT as percentiles.
    await page.getByTestId("tab-traffic").click();
    await poll(() => page.getByTestId("traffic-requests").textContent()).toMatch(/^\d+$/);
    expect(Number(await page.getByTestId("traffic-requests").textContent())).toBeGreaterThanOrEqual(
      22,
    );
    await poll(() => page.locator("[data-testid=chart] canvas").count()).toBe(4);
    const legend = (title: string) =>
      page
        .locator(`[data-testid=chart][aria-label="${title}"] .u-legend .u-label`)
        .allTextContents();
    await poll(() => legend("Latency p50 / p95 / p99")).toEqual([
      "p50 latency",
      "p95 latency",
      "p99 latency",
    ]);
    await poll(() => legend("Time to first token p50 / p95 / p99")).toEqual([
      "p50 TTFT",
      "p95 TTFT",
      "p99 TTFT",
    ]);
    // The series behind them: per-bucket percentiles over all models, and per model.
    const traffic = (await (await cortex.api("/api/traffic")).json()) as {
      buckets: { model: string; p50LatencyMs: number; p99LatencyMs: number }[];
      overall: { requests: number; p50LatencyMs: number; p99LatencyMs: number }[];
    };
    expect(traffic.overall.reduce((sum, row) => sum + row.requests, 0)).toBeGreaterThanOrEqual(22);
    for (const row of [...traffic.overall, ...traffic.buckets]) {
      expect(row.p50LatencyMs).toBeGreaterThan(0);
      expect(row.p99LatencyMs).toBeGreaterThanOrEqual(row.p50LatencyMs);
    }
    // One model's percentiles when the view narrows to it.
    await page.getByLabel("Model", { exact: true }).selectOption("llama-3.1-8b");
    await poll(() =>
      page.locator("[data-testid=chart][aria-label^='Latency p50'] figcaption").textContent(),
    ).toBe("Latency p50 / p95 / p99 · llama-3.1-8b");
    await page.getByLabel("Model", { exact: true }).selectOption("");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-traffic.png") });

    // Back to the fleet, now with the new model in gpu-b's bar, for the README's screenshot.
    await page.getByTestId("tab-fleet").click();
    await poll(() =>
      page.locator("[data-node=gpu-b] [data-testid=gpu-bar]").getAttribute("aria-label"),
    ).toMatch(new RegExp(LOADED_BY_BUTTON));
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png") });
    expect(problems).toEqual([]);
  }, 120_000);

  it("is readable in dark mode", async () => {
    const context = await (browser ?? (await launch())).newContext({
      viewport: { width: 1440, height: 900 },
      colorScheme: "dark",
    });
    const page = await context.newPage();
    await signIn(page);
    const background = await page.evaluate(
      () => getComputedStyle(document.documentElement).backgroundColor,
    );
    const text = await page.evaluate(() => getComputedStyle(document.documentElement).color);
    // Dark background, light text.
    const lightness = (rgb: string) =>
      (rgb.match(/\d+/g) ?? []).slice(0, 3).reduce((sum, part) => sum + Number(part), 0) / 3;
    expect(lightness(background)).toBeLessThan(60);
    expect(lightness(text)).toBeGreaterThan(180);
    await page.getByTestId("gpu-bar").first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-dark.png") });
    await context.close();
  }, 60_000);
});
