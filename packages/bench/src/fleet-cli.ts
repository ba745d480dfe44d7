import { createServer } from "node:http";
import type { NeuronModel } from "@cortex/protocol";
import { type FakeNeuron, startFakeNeuron } from "@cortex/testkit";

// A simulated fleet in its own process: `node fleet-cli.js <count> <token>` starts that many
// testkit fake neurons on loopback and prints one JSON line {control, neurons: [{name, url}]}.
// `POST <control>/kill/<index>` kills one (sockets destroyed, no longer listening).

const count = Number(process.argv[2] ?? "10");
const token = process.argv[3] ?? "";
const MODELS = 20;

const model = (id: string, device: number): NeuronModel => ({
  id,
  harness: "llamacpp",
  status: "loaded",
  devices: [device],
  vram_mb: 8000,
  in_flight: 0,
  queued: 0,
  max_concurrency: 4,
  last_accessed: new Date().toISOString(),
  loaded_at: new Date().toISOString(),
  error: null,
});

const neurons: FakeNeuron[] = [];
for (let i = 0; i < count; i += 1) {
  neurons.push(
    await startFakeNeuron({
      name: `fake-${String(i).padStart(4, "0")}`,
      token,
      devices: [0, 1].map((index) => ({
        index,
        vendor: "NVIDIA",
        name: "RTX 4090",
        vram_total_mb: 24_000,
        vram_free_mb: 8_000,
        utilization_pct: 0,
        temperature_c: 40,
        bus_id: null,
        driver_version: null,
      })),
      // Node 0 alone holds "only-on-0", so killing it makes that model unroutable.
      models: [
        model(`fleet-${i % MODELS}`, 0),
        model(i === 0 ? "only-on-0" : `fleet-${(i + 7) % MODELS}`, 1),
      ],
    }),
  );
}

const control = createServer((req, res) => {
  const index = Number(/^\/kill\/(\d+)$/.exec(req.url ?? "")?.[1]);
  const neuron = neurons[index];
  if (req.method !== "POST" || !neuron) {
    res.writeHead(404).end();
    return;
  }
  void neuron.kill().then(() => res.writeHead(200).end(JSON.stringify({ killed: neuron.name })));
});
control.listen(0, "127.0.0.1", () => {
  const { port } = control.address() as { port: number };
  process.stdout.write(
    `${JSON.stringify({
      control: `http://127.0.0.1:${port}`,
      neurons: neurons.map((n) => ({ name: n.name, url: n.url })),
    })}\n`,
  );
});

process.on("SIGTERM", () => {
  void Promise.all(neurons.map((n) => n.close())).then(() => process.exit(0));
});
