import type { FleetEvent } from "@cortex/protocol";
import { Presets, SingleBar } from "cli-progress";
import type { CtlContext } from "../context.js";
import { printJson } from "../context.js";
import { CtlError } from "../ctl-error.js";
import { formatEvent, formatLoadAnswer, formatUnloadAnswer, progressText } from "../tables.js";

/** Shows the load's events while the load request waits; stopped once it answered. */
interface ProgressView {
  update(event: FleetEvent): void;
  stop(): void;
}

const silentView: ProgressView = { update() {}, stop() {} };

/** A cli-progress bar on a terminal: bytes against total when known, else the phase. */
const barView = (context: CtlContext, model: string): ProgressView => {
  const bar = new SingleBar(
    {
      stream: context.stderr,
      format: "{label} [{bar}] {detail}",
      hideCursor: true,
      barsize: 30,
      clearOnComplete: false,
    },
    Presets.shades_classic,
  );
  let started = false;
  let stopped = false;
  let label = model;
  // Phases without sizes (starting, ready) keep the bar where the download left it.
  let value = 0;
  let total = 1;
  return {
    update(event) {
      if (stopped) return;
      if (event.type === "load_started") label = `${model} on ${event.node}`;
      if (event.type !== "load_progress") return;
      label = `${model} on ${event.node}`;
      if (event.total !== null && event.total > 0) total = event.total;
      if (event.bytes !== null) value = Math.min(event.bytes, total);
      if (event.phase === "ready") value = total;
      const payload = { label, detail: progressText(event) };
      if (!started) {
        bar.start(total, value, payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(value, payload);
      }
    },
    stop() {
      if (started && !stopped) bar.stop();
      stopped = true;
    },
  };
};

/** Not a terminal (a log, a pipe, a test): one line per phase or tenth of the download. */
const lineView = (context: CtlContext): ProgressView => {
  let last = "";
  const line = (text: string) => context.stderr.write(`${text}\n`);
  return {
    update(event) {
      if (event.type === "load_progress") {
        const pct =
          event.bytes !== null && event.total ? Math.floor((event.bytes / event.total) * 10) : -1;
        const key = `${event.node} ${event.phase} ${pct}`;
        if (key === last) return;
        last = key;
      }
      if (
        event.type === "load_started" ||
        event.type === "load_progress" ||
        event.type === "load_failed" ||
        event.type === "evicted"
      )
        line(formatEvent(event));
    },
    stop() {},
  };
};

/**
 * `cortexctl load <model> [--node N]`. Subscribes to the event stream first, so no progress
 * event of this load can slip past, then posts the load and shows its progress until cortex
 * answers. A broken event stream costs only the progress display, never the load.
 */
export const loadCommand = async (
  context: CtlContext,
  model: string,
  options: { node?: string },
  stop: AbortSignal,
): Promise<void> => {
  // Events name models by id; the operator may have typed an alias.
  const { models } = await context.client.catalogue();
  const id = models.find((p) => p.id === model || p.aliases.includes(model))?.id ?? model;
  // Evictions this load causes concern other models: shown, but they do not drive the bar.
  const concerns = (event: FleetEvent): boolean =>
    "model" in event &&
    (event.model === id || event.type === "evicted") &&
    (options.node === undefined || ("node" in event && event.node === options.node));

  const controller = new AbortController();
  const stream = await context.client.events({ signal: controller.signal });
  const view = context.json
    ? silentView
    : context.stderr.isTTY
      ? barView(context, id)
      : lineView(context);
  const watching = (async () => {
    for await (const item of stream.items) {
      if (item.kind === "event" && concerns(item.event)) view.update(item.event);
    }
  })().catch(() => {});
  // Ctrl-C stops waiting (and restores the terminal), not the load: cortex goes on with it.
  const interrupt = new AbortController();
  const onStop = (): void => interrupt.abort();
  stop.addEventListener("abort", onStop, { once: true });
  try {
    const answer = await context.client
      .load(
        { model, ...(options.node === undefined ? {} : { node: options.node }) },
        interrupt.signal,
      )
      .catch((error: unknown) => {
        if (!interrupt.signal.aborted) throw error;
        throw new CtlError(
          `interrupted; cortex may still finish loading ${id} (watch: cortexctl events --follow)`,
          130,
        );
      });
    view.stop();
    if (context.json) printJson(context, answer);
    else context.print(formatLoadAnswer(answer));
  } finally {
    stop.removeEventListener("abort", onStop);
    view.stop();
    controller.abort();
    await watching;
  }
};

/** `cortexctl unload <model> [--node N] [--force]`. */
export const unloadCommand = async (
  context: CtlContext,
  model: string,
  options: { node?: string; force?: boolean },
): Promise<void> => {
  const answer = await context.client.unload({
    model,
    ...(options.node === undefined ? {} : { node: options.node }),
    ...(options.force ? { force: true } : {}),
  });
  if (context.json) printJson(context, answer);
  else context.print(formatUnloadAnswer(answer));
};
