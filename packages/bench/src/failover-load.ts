import { API_KEY } from "./stack.js";
import { now, round, type Spread, spread } from "./support.js";

// The failover benchmark's client load and what it measures, apart from any fleet: clients that
// loop chat requests (JSON or streamed) through cortex, each answer classified and timed byte by
// byte on the client's clock, and the measures over them around the moment a node failed. The
// classification and the measures are pure.

export type RequestKind = "json" | "stream";

/**
 * How a request ended: `ok` (a whole answer), `error` (a status with the OpenAI envelope),
 * `error event` (a stream that ended with `data: {"error": …}`), or one without a clear error:
 * `cut` (the answer broke off), `no envelope` (an error status without one), `client timeout`,
 * `network` (no answer at all).
 */
export type Outcome =
  | "ok"
  | "error"
  | "error event"
  | "cut"
  | "no envelope"
  | "client timeout"
  | "network";

/** The outcomes a client can act on: an answer, or an error that says what went wrong. */
const CLEAR: readonly Outcome[] = ["ok", "error", "error event"];

/** One request as the client saw it, on the client's clock (ms). */
export interface RequestRecord {
  /** Its `X-Request-Id`, which cortex logs with a failed request. */
  readonly id: string;
  readonly kind: RequestKind;
  readonly sentMs: number;
  readonly doneMs: number;
  /** The longest stretch without a byte: sending to the head, between chunks, last to the end. */
  readonly silenceMs: number;
  /** 0 when no answer came. */
  readonly status: number;
  readonly outcome: Outcome;
  /** The envelope's or error event's `code` (else its type); "" for an answer. */
  readonly code: string;
  /** `X-Cortex-Node` of the answer; "" when absent (a build without the header, no answer). */
  readonly node: string;
}

const errorCodeOf = (text: string): string | null => {
  try {
    const error = (JSON.parse(text) as { error?: { code?: unknown; type?: unknown } }).error;
    if (error === undefined || error === null) return null;
    return String(error.code ?? error.type ?? "");
  } catch {
    return null;
  }
};

/** What an answer that arrived whole (as far as the client could read it) amounts to. */
export const classify = (
  status: number,
  kind: RequestKind,
  body: string,
): { readonly outcome: Outcome; readonly code: string } => {
  if (status !== 200) {
    const code = errorCodeOf(body);
    return code === null ? { outcome: "no envelope", code: "" } : { outcome: "error", code };
  }
  if (kind === "json") {
    try {
      const answer = JSON.parse(body) as { choices?: unknown };
      return Array.isArray(answer.choices)
        ? { outcome: "ok", code: "" }
        : { outcome: "cut", code: "" };
    } catch {
      return { outcome: "cut", code: "" };
    }
  }
  for (const line of body.split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const code = errorCodeOf(line.slice("data: ".length));
    if (code !== null) return { outcome: "error event", code };
  }
  return body.includes("data: [DONE]") ? { outcome: "ok", code: "" } : { outcome: "cut", code: "" };
};

/** The longest gap between consecutive instants (sending, each chunk, the end). */
export const longestGap = (instants: readonly number[]): number => {
  let longest = 0;
  for (let i = 1; i < instants.length; i += 1)
    longest = Math.max(longest, (instants[i] ?? 0) - (instants[i - 1] ?? 0));
  return longest;
};

/** One chat request through cortex, read chunk by chunk. */
export const sendOne = async (options: {
  readonly cortexUrl: string;
  readonly model: string;
  readonly id: string;
  readonly kind: RequestKind;
  readonly timeoutMs: number;
}): Promise<RequestRecord> => {
  const { id, kind } = options;
  const sentMs = now();
  const instants = [sentMs];
  let status = 0;
  let node = "";
  let body = "";
  const done = (outcome: Outcome, code: string): RequestRecord => {
    const doneMs = now();
    instants.push(doneMs);
    return {
      id,
      kind,
      sentMs,
      doneMs,
      silenceMs: longestGap(instants),
      status,
      outcome,
      code,
      node,
    };
  };
  try {
    const res = await fetch(`${options.cortexUrl}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        "x-request-id": id,
      },
      // Every request a conversation of its own, so affinity (where the build has it) spreads
      // them over the replicas as it would distinct users.
      body: JSON.stringify({
        model: options.model,
        messages: [{ role: "user", content: `Failover request ${id}: say hi.` }],
        max_tokens: 8,
        ...(kind === "stream" ? { stream: true } : {}),
      }),
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    instants.push(now());
    status = res.status;
    node = res.headers.get("x-cortex-node") ?? "";
    const decoder = new TextDecoder();
    if (res.body)
      for await (const chunk of res.body) {
        instants.push(now());
        body += decoder.decode(chunk as Uint8Array, { stream: true });
      }
    const { outcome, code } = classify(status, kind, body);
    return done(outcome, code);
  } catch (error) {
    if (error instanceof Error && error.name === "TimeoutError") return done("client timeout", "");
    // A stream whose error event arrived before the cut still said what went wrong.
    const read = classify(status, kind, body);
    if (status !== 0 && read.outcome === "error event") return done(read.outcome, read.code);
    return done(status === 0 ? "network" : "cut", "");
  }
};

export interface Load {
  /** Stops sending; resolves with every request once the last one in flight has ended. */
  readonly stop: () => Promise<RequestRecord[]>;
}

/** `json` + `stream` clients, each sending its next request as soon as its last one ended. */
export const startLoad = (options: {
  readonly cortexUrl: string;
  readonly model: string;
  readonly json: number;
  readonly stream: number;
  readonly timeoutMs: number;
  /** Prefix of the request ids. */
  readonly tag: string;
}): Load => {
  let sending = true;
  const records: RequestRecord[] = [];
  const kinds: RequestKind[] = [
    ...Array.from({ length: options.json }, (): RequestKind => "json"),
    ...Array.from({ length: options.stream }, (): RequestKind => "stream"),
  ];
  const clients = kinds.map(async (kind, client) => {
    for (let n = 0; sending; n += 1)
      records.push(
        await sendOne({
          cortexUrl: options.cortexUrl,
          model: options.model,
          id: `${options.tag}-${client}-${n}`,
          kind,
          timeoutMs: options.timeoutMs,
        }),
      );
  });
  return {
    stop: async () => {
      sending = false;
      await Promise.all(clients);
      return records;
    },
  };
};

/** A record with the node that served it, where cortex's log named one. */
export type Placed = RequestRecord & { readonly servedBy: string };

export interface Measures {
  readonly requests: number;
  readonly successes: number;
  /** `"504 upstream_timeout": 8`, `"200 error event upstream_error": 1`, `"0 client timeout": 2`. */
  readonly failures: Record<string, number>;
  /** Requests that ended with an answer or a clear error (status and envelope, error event). */
  readonly clear: number;
  /** Requests in flight at the failure or sent after it. */
  readonly affected: number;
  readonly latency_affected_ms: Spread;
  readonly latency_before_ms: Spread;
  /**
   * The longest a request waited on the failed node: its longest silence less one answer step
   * (`stepMs`, what any node takes before each byte), so an upper bound that also holds cortex's
   * and the machine's own delays.
   */
  readonly longest_wait_ms: number;
  readonly longest_wait: {
    readonly id: string;
    readonly kind: RequestKind;
    readonly outcome: Outcome;
    readonly status: number;
    readonly served_by: string;
    readonly sent_after_failure_ms: number;
    readonly latency_ms: number;
  } | null;
  /**
   * From the failure to sending the last request that ended on the failed node (answered or
   * failed there: `X-Cortex-Node` or cortex's log); null when none was sent after the failure.
   * A request retried elsewhere names the node that answered it, so it does not count here.
   */
  readonly last_sent_to_failed_ms: number | null;
}

/** The measures of one run around `failMs`, the failed node being `failed`. */
export const measure = (
  records: readonly Placed[],
  failMs: number,
  failed: string,
  stepMs: number,
): Measures => {
  const failures: Record<string, number> = {};
  for (const r of records.filter((r) => r.outcome !== "ok")) {
    const key = `${r.status} ${r.outcome === "error" ? "" : `${r.outcome} `}${r.code}`
      .replace(/\s+/g, " ")
      .trim();
    failures[key] = (failures[key] ?? 0) + 1;
  }
  const affected = records.filter((r) => r.doneMs >= failMs);
  const before = records.filter((r) => r.doneMs < failMs);
  const wait = (r: Placed) => Math.max(0, r.silenceMs - stepMs);
  const longest = affected.reduce<Placed | null>(
    (top, r) => (top === null || wait(r) > wait(top) ? r : top),
    null,
  );
  const sentAfter = affected
    .filter((r) => r.servedBy === failed)
    .map((r) => r.sentMs - failMs)
    .filter((ms) => ms >= 0);
  return {
    requests: records.length,
    successes: records.filter((r) => r.outcome === "ok").length,
    failures,
    clear: records.filter((r) => CLEAR.includes(r.outcome)).length,
    affected: affected.length,
    latency_affected_ms: spread(affected.map((r) => r.doneMs - r.sentMs)),
    latency_before_ms: spread(before.map((r) => r.doneMs - r.sentMs)),
    longest_wait_ms: longest === null ? 0 : round(wait(longest)),
    longest_wait:
      longest === null
        ? null
        : {
            id: longest.id,
            kind: longest.kind,
            outcome: longest.outcome,
            status: longest.status,
            served_by: longest.servedBy,
            sent_after_failure_ms: round(longest.sentMs - failMs),
            latency_ms: round(longest.doneMs - longest.sentMs),
          },
    last_sent_to_failed_ms: sentAfter.length > 0 ? round(Math.max(...sentAfter)) : null,
  };
};
