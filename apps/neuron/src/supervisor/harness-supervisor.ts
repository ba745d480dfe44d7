import { NeuronError } from "../errors.js";
import type { Launch } from "../harnesses/definitions.js";
import type { TimerHandle, Timers } from "../timers.js";
import { LivenessProbe, type LivenessSettings } from "./liveness.js";
import { engineOutOfMemoryError, findOutOfMemory } from "./out-of-memory.js";
import type { PidRecords } from "./pid-records.js";
import type { ExitStatus, ProcessRunner, RunningProcess } from "./process-runner.js";
import type { RingBuffer } from "./ring-buffer.js";

/**
 * What one harness is doing. `recovering` is a crash waiting `inMs` for restart `attempt`;
 * `failed` is a harness given up on after too many crashes; `stopped` is no process, by request.
 */
export type HarnessState =
  | { readonly kind: "starting" }
  | { readonly kind: "ready"; readonly url: string }
  | {
      readonly kind: "recovering";
      readonly attempt: number;
      readonly inMs: number;
      readonly reason: string;
    }
  | { readonly kind: "failed"; readonly reason: string; readonly crashes: number }
  | { readonly kind: "stopped" };

/** How to start the harness once its port is known. */
export interface HarnessCommand {
  readonly launch: Launch;
  /** The harness's whole environment (see harnesses/environment.ts). */
  readonly env: Readonly<Record<string, string>>;
}

/** What one supervisor runs, and who hears about it. */
export interface HarnessJob {
  /** Named in the pid records. */
  readonly id: string;
  /**
   * Readies what the harness needs (its model file) and says how to start it on a port. Asked
   * before every start, restarts included, so a restart sees the source as it is now.
   */
  prepare(): Promise<(port: number, host: string) => HarnessCommand>;
  /** The readiness deadline of the next start. */
  readyTimeoutMs(): number;
  /** Called on every state change, synchronously. */
  onState(state: HarnessState): void;
}

export interface SupervisorDeps {
  readonly runner: ProcessRunner;
  readonly freePort: () => Promise<number>;
  /**
   * One readiness or liveness check: does `url` answer 2xx now? A liveness probe passes a
   * `signal` that ends it at its timeout (readiness relies on the probe's own short limit).
   */
  readonly probe: (url: string, signal?: AbortSignal) => Promise<boolean>;
  readonly pids?: Pick<PidRecords, "add" | "remove">;
  readonly onRecordError: (error: unknown) => void;
  /**
   * A process of this supervisor exited, however (a stop, a crash, a failed start): the memory
   * it held on the GPUs is free now. Called before anyone waiting for that exit hears of it.
   */
  readonly onExit?: () => void;
  readonly now: () => number;
  readonly timers: Timers;
}

/** How a harness is started, stopped, restarted and (liveness.ts) probed while ready. */
export interface SupervisorSettings extends LivenessSettings {
  /** SIGTERM → SIGKILL grace of a stop. */
  readonly stopGraceMs: number;
  readonly readyPollMs: number;
  /** Delay before each restart after a crash; one more crash than entries means `failed`. */
  readonly restartDelaysMs: readonly number[];
  /** A harness that ran this long before crashing starts its crash count afresh. */
  readonly stableAfterMs: number;
}

const HOST = "127.0.0.1";

/** The restarts after a crash (docs/contract.md): 1 s, 5 s, 15 s, then `failed`. */
export const RESTART_DELAYS_MS: readonly number[] = [1000, 5000, 15_000];
/** A harness that ran this long before it crashed starts its crash count afresh. */
export const STABLE_AFTER_MS = 5 * 60_000;

const describeExit = (status: ExitStatus): string =>
  status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;

const stoppedWhileStarting = (id: string): NeuronError =>
  new NeuronError("service_unavailable", `the harness of "${id}" was stopped while starting`, {
    retryAfterS: 5,
  });

/**
 * One harness process on a loopback port: starts it and waits until it answers, probes it while
 * it runs (liveness.ts), restarts it with backoff when it exits by itself or stops answering,
 * and stops it with a grace period. Who decides what the
 * model is doing (the ModelManager) hears each state change through `onState`.
 */
export class HarnessSupervisor {
  readonly #job: HarnessJob;
  readonly #deps: SupervisorDeps;
  readonly #settings: SupervisorSettings;
  #state: HarnessState = { kind: "stopped" };
  #child: RunningProcess | null = null;
  /** Consecutive crashes since the harness last ran stably. */
  #crashes = 0;
  #readyAtMs: number | null = null;
  #restartTimer: TimerHandle | null = null;
  /** The stop under way, which a start waits for so two copies never hold memory at once. */
  #stopping: Promise<void> | null = null;
  /** Bumped by every stop: a start or restart begun before it gives up at its next step. */
  #generation = 0;
  /** Probes the ready harness; null whenever it is not ready. */
  #liveness: LivenessProbe | null = null;
  /** When bytes of an answer last flowed from the running process to a client. */
  #trafficAtMs: number | null = null;

  constructor(job: HarnessJob, deps: SupervisorDeps, settings: SupervisorSettings) {
    this.#job = job;
    this.#deps = deps;
    this.#settings = settings;
  }

  get state(): HarnessState {
    return this.#state;
  }

  /** Loopback base URL of the harness while it is ready. */
  get url(): string | null {
    return this.#state.kind === "ready" ? this.#state.url : null;
  }

  /** The running process's id, also its process group's (null while none runs). */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** The running process's recent output. */
  get output(): RingBuffer | null {
    return this.#child?.output ?? null;
  }

  /** Settles once a stop under way has ended (at once when none is). */
  get stopped(): Promise<void> {
    return this.#stopping ?? Promise.resolve();
  }

  /**
   * Bytes of an answer from this harness just reached a client: it is alive, and its liveness
   * probes are skipped while that keeps happening (a busy harness may answer its health late).
   */
  sawTraffic(): void {
    this.#trafficAtMs = this.#deps.now();
  }

  /** A new load of the model starts counting crashes afresh. */
  resetCrashes(): void {
    this.#crashes = 0;
  }

  /** Starts the harness and resolves with its URL once it answers; throws if it never does. */
  start(): Promise<string> {
    this.#cancelRestart();
    return this.#start(false);
  }

  async #start(restarting: boolean): Promise<string> {
    const generation = this.#generation;
    if (this.#stopping) await this.#stopping;
    if (generation !== this.#generation) throw stoppedWhileStarting(this.#job.id);
    this.#set({ kind: "starting" });
    try {
      const { url, child, readyUrl } = await this.#launch(generation);
      this.#readyAtMs = this.#deps.now();
      this.#trafficAtMs = null;
      this.#set({ kind: "ready", url });
      this.#watch(child, readyUrl);
      return url;
    } catch (error) {
      // A failed restart is one more crash (#restart), not a stop.
      if (!restarting && generation === this.#generation) this.#set({ kind: "stopped" });
      throw error;
    }
  }

  /**
   * Stops the harness (SIGTERM, then SIGKILL after the grace) and cancels a pending restart;
   * resolves once the process has exited. A start under way gives up.
   */
  stop(): Promise<void> {
    this.#generation += 1;
    this.#cancelRestart();
    this.#readyAtMs = null;
    const child = this.#child;
    this.#child = null;
    if (child) {
      const stopping = child.stop(this.#settings.stopGraceMs).then(() => {
        this.#record(() => this.#deps.pids?.remove(child.pid));
        if (this.#stopping === stopping) this.#stopping = null;
      });
      this.#stopping = stopping;
    }
    if (this.#state.kind !== "stopped") this.#set({ kind: "stopped" });
    return this.#stopping ?? Promise.resolve();
  }

  /** SIGKILLs the process group synchronously; for process exit handlers. */
  killNow(): void {
    this.#generation += 1;
    this.#cancelRestart();
    this.#liveness?.stop();
    this.#liveness = null;
    const child = this.#child;
    this.#child = null;
    child?.killNow();
  }

  #set(state: HarnessState): void {
    // Only a ready harness is probed: a stop, a crash or a restart ends the watch first.
    if (state.kind !== "ready") {
      this.#liveness?.stop();
      this.#liveness = null;
    }
    this.#state = state;
    this.#job.onState(state);
  }

  /** Probes the ready `child` until it leaves `ready`; see liveness.ts. */
  #watch(child: RunningProcess, readyUrl: string): void {
    if (this.#child !== child || this.#state.kind !== "ready") return;
    this.#liveness?.stop();
    const liveness = new LivenessProbe(
      {
        url: readyUrl,
        lastTrafficMs: () => this.#trafficAtMs,
        onUnresponsive: (reason) => this.#unresponsive(child, reason),
      },
      { probe: this.#deps.probe, timers: this.#deps.timers, now: this.#deps.now },
      this.#settings,
    );
    this.#liveness = liveness;
    liveness.start();
  }

  /**
   * A ready harness that stopped answering is killed at once, its whole process group (a
   * SIGSTOPped or deadlocked process would sit out a SIGTERM grace), which also cuts the
   * requests in flight to it; then it is recovered as a crash is. The restart waits until the
   * old process has exited, so the two never hold memory at once.
   */
  #unresponsive(child: RunningProcess, reason: string): void {
    if (this.#child !== child || this.#state.kind !== "ready") return;
    this.#child = null;
    child.killNow();
    const stopping = child.exited.then(() => {
      this.#record(() => this.#deps.pids?.remove(child.pid));
      if (this.#stopping === stopping) this.#stopping = null;
    });
    this.#stopping = stopping;
    this.#crashed(`${reason}; killed it; last output:\n${child.output.tail(10)}`);
  }

  #cancelRestart(): void {
    if (this.#restartTimer) this.#deps.timers.clear(this.#restartTimer);
    this.#restartTimer = null;
  }

  async #launch(
    generation: number,
  ): Promise<{ url: string; child: RunningProcess; readyUrl: string }> {
    const command = await this.#job.prepare();
    const port = await this.#deps.freePort();
    if (generation !== this.#generation) throw stoppedWhileStarting(this.#job.id);
    const { launch, env } = command(port, HOST);
    const child = this.#deps.runner.start(launch, env);
    this.#record(() =>
      this.#deps.pids?.add({
        pid: child.pid,
        model: this.#job.id,
        started_at: new Date(this.#deps.now()).toISOString(),
      }),
    );
    const url = `http://${HOST}:${port}`;
    this.#child = child;
    // Registered before any stop awaits the exit, so the mark comes before a waiting load.
    void child.exited.then((status) => {
      this.#deps.onExit?.();
      this.#onExit(child, status);
    });
    const readyUrl = `${url}${launch.readyPath}`;
    try {
      await this.#waitReady(child, readyUrl);
      return { url, child, readyUrl };
    } catch (error) {
      if (this.#child === child) this.#child = null;
      await child.stop(this.#settings.stopGraceMs);
      this.#record(() => this.#deps.pids?.remove(child.pid));
      throw error;
    }
  }

  async #waitReady(child: RunningProcess, url: string): Promise<void> {
    const timeoutMs = this.#job.readyTimeoutMs();
    const deadline = this.#deps.now() + timeoutMs;
    for (;;) {
      if (child.hasExited()) {
        const status = await child.exited;
        throw this.#startFailure(child, `${describeExit(status)} before it was ready`);
      }
      if (await this.#deps.probe(url).catch(() => false)) return;
      if (this.#deps.now() > deadline) {
        throw this.#startFailure(child, `was not ready within ${timeoutMs} ms`);
      }
      let timer: TimerHandle | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          timer = this.#deps.timers.set(resolve, this.#settings.readyPollMs);
        }),
        child.exited,
      ]);
      if (timer) this.#deps.timers.clear(timer);
    }
  }

  /**
   * Why a start failed: insufficient_vram quoting the line when the engine's output says it ran
   * out of GPU memory (out-of-memory.ts), else load_failed with the last output.
   */
  #startFailure(child: RunningProcess, what: string): NeuronError {
    const oom = findOutOfMemory(child.output.tail(200));
    if (oom) return engineOutOfMemoryError(this.#job.id, oom, what);
    return new NeuronError(
      "load_failed",
      `harness ${what}; last output:\n${child.output.tail(15)}`,
      { retryAfterS: 5 },
    );
  }

  /** A harness that exits on its own, once ready, is restarted with backoff. */
  #onExit(child: RunningProcess, status: ExitStatus): void {
    // A stopped or replaced process is not a crash; a failed start is handled by #launch.
    if (this.#child !== child) return;
    this.#child = null;
    this.#record(() => this.#deps.pids?.remove(child.pid));
    if (this.#state.kind !== "ready") return;
    this.#crashed(`harness ${describeExit(status)}; last output:\n${child.output.tail(10)}`);
  }

  #crashed(reason: string): void {
    const now = this.#deps.now();
    if (this.#readyAtMs !== null && now - this.#readyAtMs > this.#settings.stableAfterMs)
      this.#crashes = 0;
    this.#readyAtMs = null;
    this.#crashes += 1;
    const delay = this.#settings.restartDelaysMs[this.#crashes - 1];
    if (delay === undefined) {
      this.#set({
        kind: "failed",
        reason: `gave up after ${this.#crashes} crashes: ${reason}`,
        crashes: this.#crashes,
      });
      return;
    }
    const generation = this.#generation;
    this.#restartTimer = this.#deps.timers.set(() => {
      this.#restartTimer = null;
      void this.#restart(generation);
    }, delay);
    this.#set({ kind: "recovering", attempt: this.#crashes, inMs: delay, reason });
  }

  async #restart(generation: number): Promise<void> {
    if (generation !== this.#generation) return;
    try {
      await this.#start(true);
    } catch (error) {
      // Stopped meanwhile: nothing more to do. Otherwise a failed restart is one more crash.
      if (generation !== this.#generation) return;
      this.#crashed(error instanceof Error ? error.message : String(error));
    }
  }

  /**
   * Pid records are a safety net for reaping after a crash: failing to write them (a full or
   * read-only state_dir) is reported, never allowed to break a start or a stop.
   */
  #record(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.#deps.onRecordError(error);
    }
  }
}
