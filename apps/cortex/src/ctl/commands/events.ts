import type { CtlContext } from "../context.js";
import { CtlError } from "../ctl-error.js";
import { formatEvent, parseSince } from "../tables.js";

export interface EventsOptions {
  readonly follow?: boolean;
  /** Without --follow: how long to listen. */
  readonly seconds?: string;
  readonly since?: string;
}

/** The note on stderr when a run of `events` printed nothing, so silence is not a mystery. */
export const noEventsNote = (options: EventsOptions): string =>
  options.follow
    ? "no events arrived"
    : options.since === undefined
      ? `no events within ${options.seconds ?? "1"} s (--since 15m shows recent ones, --follow waits for new ones)`
      : `no events since ${options.since} nor within ${options.seconds ?? "1"} s (--follow waits for new ones)`;

/**
 * `cortexctl events`: without `--follow`, what arrives within `--seconds` (default 1) after
 * the backlog `--since` asks for; with `--follow`, until Ctrl-C or until cortex ends the stream.
 * `--json` prints one JSON event per line (JSON Lines), so it can be piped while it runs.
 * Nothing to show is not an error: a note on stderr says so and it exits 0.
 */
export const eventsCommand = async (
  context: CtlContext,
  options: EventsOptions,
  stop: AbortSignal,
): Promise<void> => {
  const seconds = Number(options.seconds ?? "1");
  // A timer holds at most 2^31-1 ms; a longer one would fire at once.
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 2_147_483)
    throw new CtlError(
      `--seconds must be a number of seconds from 0 to 2147483 (use --follow to listen until Ctrl-C), got "${options.seconds}"`,
    );
  const since = options.since === undefined ? undefined : parseSince(options.since, context.now());
  if (options.since !== undefined && since === undefined)
    throw new CtlError(
      `--since must be an ISO time (2025-06-15T12:00:00Z) or a duration back from now (30s, 15m, 2h, 1d), got "${options.since}"`,
    );

  const controller = new AbortController();
  const abort = (): void => controller.abort();
  stop.addEventListener("abort", abort, { once: true });
  const timer = options.follow ? undefined : setTimeout(abort, seconds * 1000);
  let printed = 0;
  try {
    const stream = await context.client.events({
      signal: controller.signal,
      ...(since === undefined ? {} : { since }),
    });
    for await (const item of stream.items) {
      if (item.kind !== "event") continue;
      printed += 1;
      context.print(context.json ? JSON.stringify(item.event) : formatEvent(item.event));
    }
    if (options.follow && !controller.signal.aborted)
      throw new CtlError("cortex ended the event stream (shutting down?)");
  } catch (error) {
    // Ctrl-C or the end of --seconds is how this command ends, not an error.
    if (!controller.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    stop.removeEventListener("abort", abort);
    controller.abort();
  }
  if (printed === 0) context.stderr.write(`${noEventsNote(options)}\n`);
};
