// The affinity benchmark's load and what it measures, apart from any fleet: conversations that
// send their whole history again each turn, run in waves by a few clients at a time, and the
// measures over the answers (which replica served each turn, from `X-Cortex-Node`) and over the
// harnesses' logs (how many requests each replica had in flight at once). The measures are pure.

/** Epoch milliseconds, fractional: comparable with the harnesses' logs (other processes). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** A request's stay somewhere, in epoch milliseconds. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** One wave: `conversations` conversations run by `clients` clients at once. */
export interface Wave {
  readonly clients: number;
  readonly conversations: number;
}

/** How a client paces a conversation: back to back, or thinking between turns. */
export interface Shape {
  readonly name: string;
  /** The pause after an answer before the next turn, drawn uniformly from 0 to this. */
  readonly maxThinkMs: number;
}

/** One turn as the client saw it. */
export interface TurnRecord {
  readonly conversation: number;
  readonly turn: number;
  readonly wave: number;
  readonly status: number;
  /** `X-Cortex-Node` of the answer ("" when absent). */
  readonly node: string;
  /** Sent and answered (the body read), in epoch ms. */
  readonly sentMs: number;
  readonly doneMs: number;
}

/** A chat message of a conversation. */
export interface Message {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/** Turn `turn` (1-based) of conversation `id`: system, first user message, then its history. */
export const messagesOf = (id: number, turn: number, salt = ""): Message[] => {
  const messages: Message[] = [
    { role: "system", content: "You are a helpful assistant. Answer briefly." },
    { role: "user", content: `Conversation ${id}${salt}: what is ${id} squared?` },
  ];
  for (let earlier = 1; earlier < turn; earlier += 1)
    messages.push(
      { role: "assistant", content: `Answer ${earlier} of conversation ${id}.` },
      { role: "user", content: `Follow-up ${earlier + 1}: and plus ${earlier}?` },
    );
  return messages;
};

/** A small seeded generator (an LCG), so every run thinks for the same times. */
export const seeded = (seed: number) => {
  let state = seed >>> 0;
  return (): number => {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
    return state / 2 ** 32;
  };
};

const sleep = (ms: number) =>
  ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();

/**
 * Runs the conversations wave after wave; in each, `clients` clients take the next conversation
 * and send its turns one after another. `send` makes one request and resolves with its status
 * and serving node; failed turns are recorded and the conversation goes on.
 */
export const runWaves = async (options: {
  readonly waves: readonly Wave[];
  readonly turns: number;
  readonly shape: Shape;
  readonly seed: number;
  /** Keeps this run's conversations apart from another run's on the same fleet. */
  readonly salt: string;
  readonly send: (messages: Message[]) => Promise<{ status: number; node: string }>;
}): Promise<TurnRecord[]> => {
  const records: TurnRecord[] = [];
  const random = seeded(options.seed);
  let first = 0;
  for (const [wave, { clients, conversations }] of options.waves.entries()) {
    let next = first;
    const end = first + conversations;
    const client = async () => {
      for (let id = next++; id < end; id = next++)
        for (let turn = 1; turn <= options.turns; turn += 1) {
          const sentMs = epochMs();
          const { status, node } = await options.send(messagesOf(id, turn, options.salt));
          records.push({ conversation: id, turn, wave, status, node, sentMs, doneMs: epochMs() });
          if (turn < options.turns) await sleep(random() * options.shape.maxThinkMs);
        }
    };
    await Promise.all(Array.from({ length: clients }, client));
    first = end;
  }
  return records;
};

/** The serving nodes of each conversation's turns, in turn order. */
const byConversation = (records: readonly TurnRecord[]): string[][] => {
  const nodes = new Map<number, TurnRecord[]>();
  for (const record of records) {
    const list = nodes.get(record.conversation) ?? [];
    list.push(record);
    nodes.set(record.conversation, list);
  }
  return [...nodes.values()].map((list) =>
    [...list].sort((a, b) => a.turn - b.turn).map((record) => record.node),
  );
};

/** The share of turns served by their conversation's first-turn replica. */
export const shareOnFirstReplica = (records: readonly TurnRecord[]): number => {
  const conversations = byConversation(records);
  let home = 0;
  for (const nodes of conversations) home += nodes.filter((node) => node === nodes[0]).length;
  return records.length === 0 ? Number.NaN : home / records.length;
};

/**
 * The share of turns served where their conversation's turn before was (a first turn counts):
 * where the engine holds the longest cached prefix of the prompt.
 */
export const shareOnPreviousReplica = (records: readonly TurnRecord[]): number => {
  let kept = 0;
  for (const nodes of byConversation(records))
    kept += nodes.filter((node, i) => i === 0 || node === nodes[i - 1]).length;
  return records.length === 0 ? Number.NaN : kept / records.length;
};

/** Conversations per first-turn replica. */
export const homesOf = (records: readonly TurnRecord[]): Record<string, number> => {
  const homes: Record<string, number> = {};
  for (const nodes of byConversation(records)) {
    const home = nodes[0] ?? "";
    homes[home] = (homes[home] ?? 0) + 1;
  }
  return homes;
};

/** Turns answered per node. */
export const servedBy = (records: readonly TurnRecord[]): Record<string, number> => {
  const served: Record<string, number> = {};
  for (const record of records) served[record.node] = (served[record.node] ?? 0) + 1;
  return served;
};

/** The most spans that overlap (one that ends at the instant another starts does not). */
export const peakOf = (spans: readonly Span[]): number => {
  const events = spans.flatMap((span) => [
    { at: span.start, delta: 1 },
    { at: span.end, delta: -1 },
  ]);
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let current = 0;
  let peak = 0;
  for (const event of events) {
    current += event.delta;
    peak = Math.max(peak, current);
  }
  return peak;
};

/** The time each wave ran, from its first send to its last answer (waves never overlap). */
export const waveWindows = (records: readonly TurnRecord[]): Span[] => {
  const windows: Span[] = [];
  for (const record of records) {
    const window = windows[record.wave];
    windows[record.wave] = {
      start: Math.min(window?.start ?? Number.POSITIVE_INFINITY, record.sentMs),
      end: Math.max(window?.end ?? Number.NEGATIVE_INFINITY, record.doneMs),
    };
  }
  return windows;
};

/**
 * One wave's load spread: each replica's peak of requests in flight (its harness's spans that
 * began within the wave), the busiest against the mean with every client in flight
 * (clients ÷ replicas), and the CHWBL bound for that many requests,
 * ⌈load_factor × clients ÷ replicas⌉. A replica's load only grows by picks that respect the
 * bound for the requests then in flight, and never more than `clients` are, so no replica's
 * peak can pass it.
 */
export const waveLoad = (
  spans: Readonly<Record<string, readonly Span[]>>,
  window: Span,
  clients: number,
  replicas: readonly string[],
  loadFactor: number,
) => {
  const inWave = (span: Span) => span.start >= window.start && span.start <= window.end;
  const byReplica = Object.fromEntries(
    replicas.map((node) => [node, peakOf((spans[node] ?? []).filter(inWave))]),
  );
  const busiest = Math.max(0, ...Object.values(byReplica));
  const mean = clients / replicas.length;
  return {
    clients,
    peak_in_flight: byReplica,
    busiest_peak: busiest,
    mean: Math.round(mean * 100) / 100,
    busiest_over_mean: Math.round((busiest / mean) * 100) / 100,
    bound: Math.ceil((loadFactor * clients) / replicas.length),
  };
};
