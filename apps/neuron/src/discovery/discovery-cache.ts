import { Device, type DiscoveryAnswer, type HarnessInfo, type NodeInfo } from "@cortex/protocol";
import { z } from "zod";
import { errorMessage, type GpuSource } from "./gpu-source.js";

export interface DiscoveryCacheOptions {
  /** The node's name from neuron.yaml; used until the host has been read. */
  readonly name: string;
  readonly source: GpuSource;
  /** Read once, at start. */
  readonly host: () => Promise<NodeInfo>;
  readonly harnesses: readonly HarnessInfo[];
  /** Time between the start of one device read and the next. */
  readonly refreshMs: number;
  /** A failure that is not fatal; each distinct message once per run of failures. */
  readonly onWarning: (message: string) => void;
}

const Devices = z.array(Device);

/** Why a device list cannot be used, or null; the list goes out to cortex as it is. */
const problemWith = (devices: unknown): string | null => {
  const parsed = Devices.safeParse(devices);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `the GPU source returned an invalid device list (${issue?.path.join(".") || "list"}: ${issue?.message ?? "invalid"})`;
  }
  const seen = new Set<number>();
  for (const device of parsed.data) {
    if (seen.has(device.index)) return `the GPU source returned device index ${device.index} twice`;
    seen.add(device.index);
  }
  return null;
};

/**
 * The discovery answer, served from memory so a request never waits on nvidia-smi. Devices are
 * re-read every `refreshMs` (free memory and utilization move); a read still running when the
 * timer fires makes that tick a no-op, so a slow nvidia-smi never piles up. A failed read keeps
 * the last good devices; before any good read the list is empty.
 */
export class DiscoveryCache {
  readonly #options: DiscoveryCacheOptions;
  #node: NodeInfo;
  #devices: Device[] = [];
  #reading: Promise<void> | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  /** Messages already reported since the last good read. */
  readonly #warned = new Set<string>();

  constructor(options: DiscoveryCacheOptions) {
    this.#options = options;
    this.#node = { name: options.name, hostname: "", os: "", kernel: "", cpu: "", memory_mb: 0 };
  }

  /** Reads the host and the devices once, then keeps refreshing. Never rejects. */
  async start(): Promise<void> {
    this.#stopped = false;
    const host = this.#options.host().then(
      (node) => {
        this.#node = node;
      },
      (error: unknown) => this.#warn(`could not describe the host: ${errorMessage(error)}`),
    );
    await Promise.all([host, this.refresh()]);
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  current(): DiscoveryAnswer {
    return {
      node: this.#node,
      devices: this.#devices,
      harnesses: [...this.#options.harnesses],
    };
  }

  /**
   * Reads the devices now (for instance right after a load, to see its memory in use). Joins a
   * read already running instead of starting a second one. Never rejects.
   */
  refresh(): Promise<void> {
    this.#reading ??= this.#read().finally(() => {
      this.#reading = null;
    });
    return this.#reading;
  }

  async #read(): Promise<void> {
    let devices: Device[];
    try {
      devices = await this.#options.source.read();
    } catch (error) {
      this.#warn(`could not read the GPUs, keeping the last known list: ${errorMessage(error)}`);
      return;
    }
    const problem = problemWith(devices);
    if (problem) {
      this.#warn(`${problem}; keeping the last known list`);
      return;
    }
    this.#devices = devices;
    // Reported again if it comes back after a recovery.
    this.#warned.clear();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#schedule();
      if (this.#reading) return;
      void this.refresh();
    }, this.#options.refreshMs);
    // A pending refresh is no reason to keep the process alive.
    this.#timer.unref();
  }

  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#options.onWarning(message);
  }
}
