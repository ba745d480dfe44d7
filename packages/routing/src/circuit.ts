// Failure memory per replica (node, model): a circuit breaker. A failure (the connection
// failed, the harness answered 5xx, the answer stalled) opens it for a cooldown of 1 s that
// doubles with each failure in a row, up to 60 s; then it half-opens and lets one trial request
// through: its success closes the circuit, its failure opens it again for longer. Pure: the
// state and the clock in, the next state out.

export const CIRCUIT_FIRST_COOLDOWN_MS = 1_000;
export const CIRCUIT_MAX_COOLDOWN_MS = 60_000;

export type Circuit =
  | { readonly state: "closed" }
  | {
      readonly state: "open";
      /** Failures in a row so far. */
      readonly failures: number;
      /** When it half-opens (epoch ms). */
      readonly untilMs: number;
    }
  | {
      readonly state: "half_open";
      readonly failures: number;
      /** A trial request is out: nothing else goes until it ends. */
      readonly trial: boolean;
    };

export const CLOSED: Circuit = { state: "closed" };

const cooldownMs = (failures: number): number =>
  Math.min(CIRCUIT_MAX_COOLDOWN_MS, CIRCUIT_FIRST_COOLDOWN_MS * 2 ** Math.max(0, failures - 1));

/** The circuit as time has moved it: an open one whose cooldown ended is half-open. */
export const circuitAt = (circuit: Circuit, nowMs: number): Circuit =>
  circuit.state === "open" && nowMs >= circuit.untilMs
    ? { state: "half_open", failures: circuit.failures, trial: false }
    : circuit;

/** A request to the replica failed. */
export const circuitFailed = (circuit: Circuit, nowMs: number): Circuit => {
  const failures = circuit.state === "closed" ? 1 : circuit.failures + 1;
  return { state: "open", failures, untilMs: nowMs + cooldownMs(failures) };
};

/** A request to the replica succeeded: the circuit closes. */
export const circuitSucceeded = (): Circuit => CLOSED;

/** Whether a new request may go to the replica now (a half-open one takes a single trial). */
export const circuitAllows = (circuit: Circuit, nowMs: number): boolean => {
  const now = circuitAt(circuit, nowMs);
  return now.state === "closed" || (now.state === "half_open" && !now.trial);
};

/** The circuit once a request was sent: a half-open one has its trial out. */
export const circuitSent = (circuit: Circuit, nowMs: number): Circuit => {
  const now = circuitAt(circuit, nowMs);
  return now.state === "half_open" ? { ...now, trial: true } : now;
};
