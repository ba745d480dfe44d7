import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { listen } from "@cortex/http-kit";
import type { DiscoveryAnswer } from "@cortex/protocol";
import { silent, TEST_SELF_URL } from "../models/model-manager.fixtures.js";
import type { ModelManager } from "../models/model-manager.js";
import { type AppDeps, createNeuronApp } from "./app.js";

// The neuron's HTTP API for loopback tests, in front of a manager the test built.

/** A node with no devices and no harnesses, for tests that never ask /discovery. */
const TEST_DISCOVERY: DiscoveryAnswer = {
  node: { name: "n", hostname: "n", os: "Linux", kernel: "6.1", cpu: "test", memory_mb: 1024 },
  devices: [],
  harnesses: [],
};

export interface TestApp {
  readonly server: Server;
  /** `http://127.0.0.1:<port>`, with no trailing slash. */
  readonly base: string;
  /** Cuts open connections (streams included) and closes the server. */
  readonly close: () => Promise<void>;
}

/**
 * Serves `createNeuronApp` for `manager` on 127.0.0.1, port 0. The token is always the test's
 * choice (an empty one turns authentication off); the rest defaults to a healthy neuron at
 * TEST_SELF_URL.
 */
export const startTestApp = async (
  manager: ModelManager,
  options: Pick<AppDeps, "token"> & Partial<Omit<AppDeps, "manager">>,
): Promise<TestApp> => {
  const app = createNeuronApp({
    version: "0.1.0",
    startedAtMs: Date.now(),
    selfUrl: TEST_SELF_URL,
    discovery: () => TEST_DISCOVERY,
    status: () => "ok",
    log: silent,
    ...options,
    manager,
  });
  const server = await listen(app, 0, "127.0.0.1");
  return {
    server,
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
};
