import { NeuronError } from "../errors.js";
import type { Harness } from "../harnesses/definitions.js";
import type { ModelSpec } from "../harnesses/model-spec.js";
import type { HarnessJob, HarnessState, SupervisorDeps } from "../supervisor/harness-supervisor.js";
import type { Timers } from "../timers.js";
import type { ManagerDeps, SourcePreparer } from "./manager-deps.js";
import type { ProgressListeners } from "./progress.js";

export interface JobDeps {
  readonly harnesses: ReadonlyMap<string, Harness>;
  readonly sources: SourcePreparer;
  readonly progress: ProgressListeners;
  /** Readiness deadline for a model of `sizeMb`. */
  readonly readyTimeoutMs: (sizeMb: number) => number;
  /** Environment every harness gets (CUDA_DEVICE_ORDER=PCI_BUS_ID). */
  readonly harnessEnv: Readonly<Record<string, string>>;
}

/**
 * What a model's supervisor runs: its source made a local file (a download, with progress),
 * then its harness's command on the port given. `spec` is read at each start, so a model loaded
 * again with another spec starts with that one.
 */
export const harnessJob = (
  spec: () => ModelSpec,
  deps: JobDeps,
  onState: (state: HarnessState) => void,
): HarnessJob => ({
  get id() {
    return spec().id;
  },
  readyTimeoutMs: () => deps.readyTimeoutMs(spec().vram_mb),
  onState,
  prepare: async () => {
    const current = spec();
    const { id } = current;
    const modelPath = await deps.sources.prepare(current.source, (progress) =>
      deps.progress.emit(id, progress),
    );
    deps.progress.emit(id, {
      phase: "starting",
      bytes: null,
      total: null,
      message: `starting ${current.harness}`,
    });
    const harness = deps.harnesses.get(current.harness);
    if (!harness)
      throw new NeuronError("harness_not_found", `harness "${current.harness}" is not configured`);
    return (port, host) => {
      const launch = harness.launch({ spec: current, modelPath, port, host });
      // Only what the harness inherits (the system allow-list and its inherit_env), never the
      // neuron's whole environment: see harnesses/environment.ts.
      const env = {
        ...launch.inherited,
        ...deps.harnessEnv,
        ...launch.env,
        // An empty list hides every GPU from a CPU model's harness.
        CUDA_VISIBLE_DEVICES: current.devices.join(","),
      };
      return { launch, env };
    };
  },
});

/**
 * What every model's supervisor runs on: the manager's process runner, ports, probe, clock, and
 * `onExit`, told of every harness process that exits (its GPU memory is free again).
 */
export const supervisionOf = (
  deps: ManagerDeps,
  now: () => number,
  timers: Timers,
  onExit: () => void,
): SupervisorDeps => ({
  runner: deps.runner,
  freePort: deps.freePort,
  probe: deps.probe,
  ...(deps.pids ? { pids: deps.pids } : {}),
  onRecordError: (error) =>
    deps.log.error({ err: error }, "could not update the harness pid records"),
  onExit,
  now,
  timers,
});
