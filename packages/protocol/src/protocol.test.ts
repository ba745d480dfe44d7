import { describe, expect, it } from "vitest";
import {
  CatalogueFile,
  CortexConfig,
  DiscoveryAnswer,
  ERROR_CODES,
  FleetEvent,
  FleetSnapshot,
  HealthAnswer,
  isErrorCode,
  ListenAddress,
  LoadAnswer,
  LoadRequest,
  ModelProfile,
  ModelsAnswer,
  NeuronConfig,
  parseListen,
  problemsOf,
} from "./index.js";

const designProfile = {
  id: "qwen3-8b",
  aliases: ["qwen", "default"],
  harness: "llamacpp",
  source: "hf:Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
  quant: "Q4_K_M",
  vram_mb: 6500,
  min_devices: 1,
  min_device_vram_mb: 8000,
  pinned_on: ["gpu-a"],
  residency_priority: 100,
  max_concurrency: 4,
  idle_ttl_s: 900,
  context_length: 8192,
  capabilities: ["chat", "completions", "embeddings"],
  args: { n_gpu_layers: 99 },
};

const device = {
  index: 0,
  vendor: "NVIDIA",
  name: "NVIDIA GeForce RTX 4090",
  vram_total_mb: 24564,
  vram_free_mb: 20000,
  utilization_pct: 12,
  temperature_c: 41,
  bus_id: "00000000:01:00.0",
  driver_version: "550.54.14",
};

const model = {
  id: "qwen3-8b",
  harness: "llamacpp",
  status: "loaded",
  devices: [0],
  vram_mb: 6500,
  in_flight: 0,
  queued: 0,
  max_concurrency: 4,
  last_accessed: "2026-11-24T10:00:00.000Z",
  loaded_at: "2026-11-24T09:00:00.000Z",
  error: null,
};

describe("catalogue model profile", () => {
  it("accepts the DESIGN.md example as written", () => {
    expect(ModelProfile.parse(designProfile)).toMatchObject(designProfile);
  });

  it("fills defaults, deriving the per-device minimum from the even share", () => {
    const parsed = ModelProfile.parse({
      id: "big",
      harness: "vllm",
      source: "big",
      vram_mb: 70_001,
      min_devices: 2,
    });
    expect(parsed).toMatchObject({
      aliases: [],
      runs_on: "gpu",
      min_device_vram_mb: 35_001,
      pinned_on: [],
      residency_priority: 0,
      max_concurrency: 4,
      capabilities: ["chat", "completions"],
      args: {},
    });
  });

  it("needs no device memory for a CPU model", () => {
    const parsed = ModelProfile.parse({
      id: "demo",
      harness: "llamacpp",
      source: "demo.gguf",
      vram_mb: 0,
      runs_on: "cpu",
    });
    expect(parsed.min_device_vram_mb).toBe(0);
  });

  it.each([
    ["negative VRAM", { vram_mb: -1 }, "vram_mb"],
    ["zero devices", { min_devices: 0 }, "min_devices"],
    ["unknown key", { vram: 10 }, "vram"],
    ["id with a slash", { id: "org/model" }, "id"],
    ["id that traverses", { id: "../etc" }, "id"],
    ["string VRAM", { vram_mb: "6500" }, "vram_mb"],
    ["unknown capability", { capabilities: ["vision"] }, "capabilities[0]"],
    ["zero concurrency", { max_concurrency: 0 }, "max_concurrency"],
    ["shell in args key", { args: { "rm -rf": 1 } }, "args.rm -rf"],
  ])("rejects %s", (_name, patch, path) => {
    const result = CatalogueFile.safeParse({ models: [{ ...designProfile, ...patch }] });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(problemsOf(result.error).map((problem) => problem.path)).toContain(`models[0].${path}`);
  });

  it("reports every problem at once, not only the first", () => {
    const result = CatalogueFile.safeParse({
      models: [{ ...designProfile, vram_mb: -5, min_devices: 0, colour: "red" }],
    });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(problemsOf(result.error).map((problem) => problem.path)).toEqual(
      expect.arrayContaining(["models[0].vram_mb", "models[0].min_devices", "models[0].colour"]),
    );
  });
});

describe("neuron wire shapes", () => {
  it("parses /health, /discovery and /models answers", () => {
    expect(HealthAnswer.parse({ status: "ok", version: "0.1.0", uptime_s: 3.2 }).status).toBe("ok");
    const discovery = DiscoveryAnswer.parse({
      node: {
        name: "gpu-a",
        hostname: "gpu-a.lan",
        os: "Debian 12",
        kernel: "6.1.0",
        cpu: "AMD EPYC",
        memory_mb: 128_000,
      },
      devices: [device],
      harnesses: [{ name: "llamacpp", kind: "builtin" }],
    });
    expect(discovery.devices[0]?.vram_total_mb).toBe(24564);
    expect(ModelsAnswer.parse([model])[0]?.status).toBe("loaded");
  });

  it("tolerates fields a newer neuron adds, and drops them", () => {
    const parsed = ModelsAnswer.parse([{ ...model, tokens_per_s: 40 }]);
    expect(parsed[0]).not.toHaveProperty("tokens_per_s");
  });

  it("rejects a model in an unknown status", () => {
    expect(ModelsAnswer.safeParse([{ ...model, status: "sleeping" }]).success).toBe(false);
  });

  it("keeps load requests strict and answers exact", () => {
    expect(
      LoadRequest.safeParse({ model_id: "m", harness: "llamacpp", source: "m.gguf" }).success,
    ).toBe(true);
    expect(
      LoadRequest.safeParse({ model_id: "m", harness: "llamacpp", source: "m.gguf", cmd: "sh" })
        .success,
    ).toBe(false);
    // A repeated device would halve the memory each one seems to need.
    expect(
      LoadRequest.safeParse({ model_id: "m", harness: "llamacpp", source: "m", devices: [0, 0] })
        .success,
    ).toBe(false);
    expect(
      LoadAnswer.parse({
        id: "m",
        status: "loaded",
        url: "http://localhost:13131",
        load_ms: 12,
        already_loaded: false,
      }).already_loaded,
    ).toBe(false);
  });
});

describe("cortex wire shapes", () => {
  it("parses a fleet snapshot", () => {
    const snapshot = FleetSnapshot.parse({
      taken_at: "2026-11-24T10:00:00.000Z",
      nodes: [
        {
          name: "gpu-a",
          url: "http://gpu-a.lan:13131",
          healthy: true,
          consecutive_failures: 0,
          last_poll_at: "2026-11-24T10:00:00.000Z",
          last_ok_at: "2026-11-24T10:00:00.000Z",
          error: null,
          node: null,
          devices: [device],
          harnesses: [],
          models: [model],
        },
      ],
    });
    expect(snapshot.nodes[0]?.models).toHaveLength(1);
  });

  it("tags fleet events by type", () => {
    const event = FleetEvent.parse({
      type: "node_health",
      at: "2026-11-24T10:00:00.000Z",
      node: "gpu-a",
      healthy: false,
      error: "ECONNREFUSED",
    });
    expect(event.type).toBe("node_health");
    expect(FleetEvent.safeParse({ type: "node_health", at: "now" }).success).toBe(false);
  });
});

describe("config files", () => {
  it("parses the DESIGN.md neuron.yaml", () => {
    const config = NeuronConfig.parse({
      name: "gpu-a",
      listen: "0.0.0.0:13131",
      token: "change-me",
      models_dir: "./data/models",
      default_idle_ttl_s: 900,
      harnesses: {
        llamacpp: {},
        "llama-server": { command: "llama-server" },
        vllm: { command: "vllm" },
        "my-engine": {
          command: ["my-server", "--model", "{model_path}", "--port={port}"],
          ready_path: "/health",
        },
      },
      devices: [],
      hf_endpoint: "https://huggingface.co",
      preload: [],
    });
    expect(Object.keys(config.harnesses)).toHaveLength(4);
  });

  it("parses the DESIGN.md cortex.yaml and fills defaults", () => {
    const config = CortexConfig.parse({
      listen: "0.0.0.0:31313",
      catalogue: "./catalogue",
      data_dir: "./data",
      poll_interval_ms: 2000,
      unhealthy_after_failures: 3,
      api_keys: [],
      admin_token: "change-me",
      neurons: [{ name: "gpu-a", url: "http://gpu-a.lan:13131", token: "change-me" }],
    });
    expect(config.queue_timeout_ms).toBeGreaterThan(0);
  });

  it("refuses unknown keys and duplicate neuron names", () => {
    const result = CortexConfig.safeParse({
      poll_intervall_ms: 10,
      neurons: [
        { name: "a", url: "http://a:1" },
        { name: "a", url: "http://b:1" },
      ],
    });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(problemsOf(result.error).map((problem) => problem.path)).toEqual(
      expect.arrayContaining(["poll_intervall_ms", "neurons[1].name"]),
    );
  });

  it.each([
    ["0.0.0.0:13131", { host: "0.0.0.0", port: 13131 }],
    [":8080", { host: "0.0.0.0", port: 8080 }],
    ["[::1]:0", { host: "::1", port: 0 }],
    ["localhost:31313", { host: "localhost", port: 31313 }],
  ])("parses listen address %s", (value, expected) => {
    expect(ListenAddress.safeParse(value).success).toBe(true);
    expect(parseListen(value)).toEqual(expected);
  });

  it.each(["13131", "host:99999", "http://x:1", "a b:1"])("rejects listen address %s", (value) => {
    expect(ListenAddress.safeParse(value).success).toBe(false);
  });
});

describe("errors", () => {
  it.each(Object.keys(ERROR_CODES))("%s has a client or server error status", (code) => {
    if (!isErrorCode(code)) throw new Error(code);
    const { status } = ERROR_CODES[code];
    expect(status >= 400 && status < 600).toBe(true);
  });

  it("maps the DESIGN.md table", () => {
    expect(ERROR_CODES.missing_model.status).toBe(400);
    expect(ERROR_CODES.model_not_found.status).toBe(404);
    expect(ERROR_CODES.no_feasible_node.status).toBe(503);
    expect(ERROR_CODES.overloaded.status).toBe(503);
    expect(ERROR_CODES.queue_timeout.status).toBe(504);
    expect(ERROR_CODES.invalid_api_key.status).toBe(401);
    expect(ERROR_CODES.upstream_error.status).toBe(502);
  });
});
