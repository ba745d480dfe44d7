import { Device, type DiscoveryAnswer, type HarnessInfo, type NodeInfo } from "@cortex/protocol";
import { z } from "zod";
import {
  type GpuProcess,
  type GpuProcessSource,
  type GroupMemory,
  memoryByGroup,
} from "./gpu-processes.js";
import { errorMessage, type GpuSource } from "./gpu-source.js";

export interface DiscoveryCacheOptions {
  /** The node's name from neuron.yaml; used until the host has been read. */
  readonly name: string;
  readonly source: GpuSource;
  /**
   * What each process holds on the GPUs, read with the devices; without it (devices from
   * neuron.yaml) no model's memory is measured.
   */
  readonly processes?: GpuProcessSource;
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
 * The discovery answer, served from memory so a request never waits on nvidia-smi. Devices (and
 * each process's GPU memory) are re-read every `refreshMs` (free memory and utilization move); a
 * read still running when the timer fires makes that tick a no-op, so a slow nvidia-smi never
 * piles up. A failed read keeps the last good devices; before any good read the list is empty.
 *
 * Memory changes between reads too: when a harness exits, `changed()` marks every reading begun
 * before it stale, and `refresh()` then waits for a read begun after it. Reads are numbered as
 * they start, so "begun after the last change" is exact whatever the clock does.
 */
export class DiscoveryCache {
  readonly #options: DiscoveryCacheOptions;
  #node: NodeInfo;
  #devices: Device[] = [];
  /** Per process group, what it holds; null while per-process figures cannot be had. */
  #memory: ReadonlyMap<number, GroupMemory> | null = null;
  /** The read under way, numbered. */
  #reading: { readonly seq: number; readonly done: Promise<void> } | null = null;
  /** A read to start once the stale one under way ends, shared by every caller. */
  #queued: Promise<void> | null = null;
  /** Reads started so far. */
  #started = 0;
  /** The number of the read the devices come from (0: none yet). */
  #devicesSeq = 0;
  /** Reads numbered above this began after the last change of GPU memory. */
  #changedAfter = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  /** Messages already reported since the last good read of the devices. */
  readonly #warned = new Set<string>();
  /** The same for per-process reads, which fail (and recover) on their own. */
  readonly #processWarned = new Set<string>();

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
      (error: unknown) =>
        this.#warn(this.#warned, `could not describe the host: ${errorMessage(error)}`),
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
   * What the process group `group` (a harness's) held on the GPUs at the last read; null where
   * that cannot be measured (no per-process figures, none of its processes on a GPU, a figure
   * the tool could not give).
   */
  usedBy(group: number): GroupMemory | null {
    return this.#memory?.get(group) ?? null;
  }

  /** GPU memory just changed (a harness exited): every reading begun before now is stale. */
  changed(): void {
    this.#changedAfter = this.#started;
  }

  /** Whether the devices come from a read begun after the last change of GPU memory. */
  fresh(): boolean {
    return this.#devicesSeq > this.#changedAfter;
  }

  /**
   * Reads the devices now (after an exit, or before refusing a load on an older reading). Joins
   * the read under way when it began after the last change; otherwise one more read starts
   * once it ends, shared by every caller meanwhile. Never rejects.
   */
  refresh(): Promise<void> {
    const reading = this.#reading;
    if (!reading) return this.#startRead();
    if (reading.seq > this.#changedAfter) return reading.done;
    this.#queued ??= reading.done.then(() => {
      this.#queued = null;
      return this.refresh();
    });
    return this.#queued;
  }

  #startRead(): Promise<void> {
    this.#started += 1;
    const seq = this.#started;
    const done = this.#read(seq).finally(() => {
      if (this.#reading?.seq === seq) this.#reading = null;
    });
    this.#reading = { seq, done };
    return done;
  }

  async #read(seq: number): Promise<void> {
    const [devicesRead, processesRead] = await Promise.allSettled([
      this.#options.source.read(),
      this.#options.processes?.read() ?? Promise.resolve(null),
    ]);
    this.#takeDevices(seq, devicesRead);
    let processes: GpuProcess[] | null = null;
    if (processesRead.status === "fulfilled") {
      processes = processesRead.value;
      this.#processWarned.clear();
    } else {
      this.#warn(
        this.#processWarned,
        `could not read each process's GPU memory, so no model's use is measured: ${errorMessage(processesRead.reason)}`,
      );
    }
    this.#memory = processes === null ? null : memoryByGroup(processes, this.#devices);
  }

  #takeDevices(seq: number, read: PromiseSettledResult<Device[]>): void {
    if (read.status === "rejected") {
      this.#warn(
        this.#warned,
        `could not read the GPUs, keeping the last known list: ${errorMessage(read.reason)}`,
      );
      return;
    }
    const problem = problemWith(read.value);
    if (problem) {
      this.#warn(this.#warned, `${problem}; keeping the last known list`);
      return;
    }
    this.#devices = read.value;
    this.#devicesSeq = seq;
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

  #warn(warned: Set<string>, message: string): void {
    if (warned.has(message)) return;
    warned.add(message);
    this.#options.onWarning(message);
  }
}
