import { type Log, type ManagerDeps, type ManagerSettings, ModelManager } from "./model-manager.js";

// A ModelManager for tests: what every test spells the same way is here, what a test is about
// it passes in.

export const silent: Log = { info: () => {}, warn: () => {}, error: () => {} };

/** The neuron's own URL in tests: what load and endpoint answers name. */
export const TEST_SELF_URL = "http://localhost:13131";

/** Settings for a test: short waits, no restarts, one request queued, no harness environment. */
export const testSettings = (overrides: Partial<ManagerSettings> = {}): ManagerSettings => ({
  selfUrl: TEST_SELF_URL,
  defaultIdleTtlS: 0,
  stopGraceMs: 100,
  readyTimeoutMs: () => 1000,
  readyPollMs: 10,
  restartDelaysMs: [],
  stableAfterMs: 60_000,
  // Off unless a test is about liveness: probes would otherwise run on every fake clock.
  healthIntervalMs: 0,
  unhealthyAfterFailures: 3,
  maxQueued: 1,
  queueTimeoutMs: 1000,
  swapMaxWaitMs: 30_000,
  harnessEnv: {},
  ...overrides,
});

/** Settings for a test that starts real harness processes: time for them to start and stop. */
export const processSettings = (overrides: Partial<ManagerSettings> = {}): ManagerSettings =>
  testSettings({ stopGraceMs: 500, readyTimeoutMs: () => 10_000, readyPollMs: 25, ...overrides });

/**
 * A manager with the harnesses and sources a test names; by default no device, no harness may
 * start (the runner throws), and nothing ever becomes ready.
 */
export const testManager = (
  deps: Pick<ManagerDeps, "harnesses" | "sources"> & Partial<ManagerDeps>,
  settings: ManagerSettings = testSettings(),
): ModelManager =>
  new ModelManager(
    {
      runner: {
        start: () => {
          throw new Error("no harness may start in this test");
        },
      },
      devices: () => [],
      freePort: async () => 9,
      probe: async () => false,
      log: silent,
      ...deps,
    },
    settings,
  );
