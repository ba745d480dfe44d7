import { setMaxListeners } from "node:events";
import type { DiscoveryAnswer, FleetNode, ModelsAnswer } from "@cortex/protocol";
import PQueue from "p-queue";
import type { Log } from "../log.js";
import { NeuronCallError } from "../neurons/call-error.js";
import type { NeuronClient } from "../neurons/neuron-client.js";
import type { FleetStore, StoreTarget } from "./fleet-store.js";
import { applyNews, LiveMarks, type LiveNews } from "./live-news.js";
import { nextNode, type Outcome } from "./poll-outcome.js";

/** What the poller needs of a neuron client; tests pass fakes. */
export type NeuronClientLike = Pick<NeuronClient, "models" | "discovery">;

export interface PollerOptions {
  readonly store: FleetStore;
  readonly targets: readonly StoreTarget[];
  /** The client for a node; called once per target, at construction. */
  readonly client: (name: string) => NeuronClientLike;
  readonly intervalMs: number;
  readonly discoveryIntervalMs: number;
  /** Nodes polled at once. */
  readonly concurrency: number;
  /** Consecutive failed polls after which a healthy node is marked unhealthy. */
  readonly unhealthyAfter: number;
  readonly log: Log;
  /** Every successful discovery, after the snapshot took it (persistence, metrics). */
  readonly onDiscovery?: (node: string, answer: DiscoveryAnswer) => void;
  /** `/models` is being requested from a node (cortex notes its own requests there now). */
  readonly onModelsSent?: (node: string) => void;
  /** A node's `/models` answer was applied to the snapshot (not discarded as stale). */
  readonly onModelsApplied?: (node: string) => void;
  readonly now?: () => number;
}

interface HealthChange {
  readonly name: string;
  readonly healthy: boolean;
  readonly error: string | null;
  readonly failures: number;
}

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/**
 * Polls every neuron's `/models` (and `/discovery` when due) on a fixed cadence and applies each
 * tick's answers to the fleet store in one atomic update. Ticks never overlap: one that outlasts
 * the interval is followed at once by the next. A node that stops answering keeps its last known
 * models and devices, and is marked unhealthy after `unhealthyAfter` failed polls in a row, or at
 * once when a request to it failed (`suspect`). News from a node's event stream (`news`) reaches
 * the snapshot at once; polls stay the consistency check, and never undo newer news.
 */
export class Poller {
  readonly #store: FleetStore;
  readonly #clients = new Map<string, NeuronClientLike>();
  readonly #queue: PQueue;
  readonly #intervalMs: number;
  readonly #discoveryIntervalMs: number;
  readonly #unhealthyAfter: number;
  readonly #log: Log;
  readonly #onDiscovery: ((node: string, answer: DiscoveryAnswer) => void) | undefined;
  readonly #onModelsSent: ((node: string) => void) | undefined;
  readonly #onModelsApplied: ((node: string) => void) | undefined;
  /** Nodes whose `/models` answer the current apply took (filled by #next). */
  #applied: string[] = [];
  readonly #now: () => number;
  /** When each node's discovery last succeeded. */
  readonly #discoveredAt = new Map<string, number>();
  /** How many times each node was suspected: a poll sent before the last one cannot clear it. */
  readonly #suspicions = new Map<string, number>();
  /** Nodes whose poll for a suspicion is queued and not started yet (one each at most). */
  readonly #suspectPolls = new Set<string>();
  /** Which models live news touched while a node's poll was out. */
  readonly #live = new LiveMarks();
  /** Nodes whose news came during a change of cortex's own there: polled once it ends. */
  readonly #heldBack = new Set<string>();
  #controller = Poller.#newController();
  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #scheduledQueued = false;
  /** The last queued tick: every tick and `pollNow` runs after the one before it. */
  #tail: Promise<void> = Promise.resolve();

  constructor(options: PollerOptions) {
    this.#store = options.store;
    for (const target of options.targets)
      this.#clients.set(target.name, options.client(target.name));
    this.#queue = new PQueue({ concurrency: Math.max(1, options.concurrency) });
    this.#intervalMs = options.intervalMs;
    this.#discoveryIntervalMs = options.discoveryIntervalMs;
    this.#unhealthyAfter = options.unhealthyAfter;
    this.#log = options.log;
    this.#onDiscovery = options.onDiscovery;
    this.#onModelsSent = options.onModelsSent;
    this.#onModelsApplied = options.onModelsApplied;
    this.#now = options.now ?? Date.now;
    this.#store.onSettled((name) => {
      if (this.#heldBack.delete(name) && this.#running) void this.pollNow(name);
    });
  }

  /** One signal for every call of a tick: hundreds of calls listen to it at once. */
  static #newController(): AbortController {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  }

  /** Polls every node now, then every `intervalMs` from the start of the previous tick. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#onTimer();
  }

  /** Clears the schedule and aborts in-flight calls; resolves once the current tick is over. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    // An aborted tick applies nothing: its failures are the poller's, not the neurons'.
    this.#controller.abort(new Error("poller stopped"));
    this.#controller = Poller.#newController();
    await this.#tail;
  }

  /**
   * Polls a node from now on with `client` (a node added at run time, or one whose URL or token
   * changed): its next poll discovers it afresh. Call `pollNow(name)` to poll it at once.
   */
  addTarget(name: string, client: NeuronClientLike): void {
    this.#clients.set(name, client);
    this.#discoveredAt.delete(name);
  }

  /** Polls the node no more (it left the fleet); a poll of it under way applies nothing. */
  removeTarget(name: string): void {
    this.#clients.delete(name);
    this.#discoveredAt.delete(name);
    this.#suspicions.delete(name);
    this.#suspectPolls.delete(name);
    this.#heldBack.delete(name);
    this.#live.settle(name);
  }

  /** One tick over every node, after any tick under way. */
  tick(): Promise<void> {
    return this.#serial(() => this.#poll(undefined));
  }

  /** Polls one node (or all) at once, outside the schedule, but after any tick under way. */
  pollNow(name?: string): Promise<void> {
    return this.#serial(() => this.#poll(name));
  }

  /**
   * A request to the node failed to connect or timed out: the node is marked unhealthy at once
   * (its error `suspect: <why>`), so it gets no new requests, and is polled now. Only a poll sent
   * after this brings it back; failed polls count towards `unhealthyAfter` as usual. A burst of
   * failures queues one poll, not one each.
   */
  suspect(name: string, why: string): void {
    if (!this.#clients.has(name)) return;
    this.#suspicions.set(name, (this.#suspicions.get(name) ?? 0) + 1);
    let flipped = false;
    this.#store.update((current) => {
      const index = current.nodes.findIndex((node) => node.name === name);
      const node = current.nodes[index];
      if (node === undefined || !node.healthy) return current;
      flipped = true;
      const nodes = current.nodes.slice();
      nodes[index] = { ...node, healthy: false, error: `suspect: ${why}` };
      return { ...current, nodes };
    });
    if (flipped) this.#log.warn({ node: name, error: why }, "neuron is suspect");
    // A stopped poller polls no more: the node stays suspect.
    if (!this.#running || this.#suspectPolls.has(name)) return;
    this.#suspectPolls.add(name);
    void this.#serial(async () => {
      // From here on a new suspicion queues another poll: this one may have left before it.
      this.#suspectPolls.delete(name);
      await this.#poll(name);
    });
  }

  /**
   * News from the node's event stream (live-events.ts), applied at once: the snapshot's models
   * change (and the store announces the changes as it does for polls), and a poll that left
   * before it cannot undo it. While cortex carries out a change of its own there, news waits
   * like a poll answer does: it is dropped and the node polled once that change is over.
   */
  news(name: string, news: LiveNews): void {
    if (!this.#clients.has(name)) return;
    if (this.#store.busy(name)) {
      this.#heldBack.add(name);
      return;
    }
    this.#live.record(name, news);
    this.#store.update((current) => {
      const index = current.nodes.findIndex((node) => node.name === name);
      const node = current.nodes[index];
      if (node === undefined) return current;
      const models = applyNews(node.models, news);
      if (models === node.models) return current;
      const nodes = current.nodes.slice();
      nodes[index] = { ...node, models };
      return { ...current, nodes };
    });
    // The news's in-flight counts include what cortex has in flight there now: applied as a
    // poll answer sent and answered this instant. A poll still out then counts from now too.
    this.#onModelsSent?.(name);
    this.#onModelsApplied?.(name);
    this.#onModelsSent?.(name);
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    if (!this.#running || this.#scheduledQueued) return;
    this.#scheduledQueued = true;
    void this.#serial(async () => {
      this.#scheduledQueued = false;
      if (!this.#running) return;
      // Armed when the tick starts, so ticks start every interval unless one runs longer.
      this.#timer = setTimeout(this.#onTimer, this.#intervalMs);
      await this.#poll(undefined);
    });
  };

  #serial(work: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(work).catch((error: unknown) => {
      this.#log.error({ err: error }, "poll tick failed");
    });
    this.#tail = run;
    return run;
  }

  async #poll(only: string | undefined): Promise<void> {
    const signal = this.#controller.signal;
    const now = this.#now();
    const outcomes = new Map<string, Outcome>();
    const tasks: Promise<void>[] = [];
    const used = new Map<string, NeuronClientLike>();
    for (const node of this.#store.snapshot.nodes) {
      if (only !== undefined && node.name !== only) continue;
      const client = this.#clients.get(node.name);
      if (!client) continue;
      used.set(node.name, client);
      const discoveredAt = this.#discoveredAt.get(node.name);
      // Discovery on the first poll, on its own cadence, and whenever the node had failed or
      // was suspect: a neuron that comes back may have restarted with other devices or harnesses.
      const discover =
        discoveredAt === undefined ||
        now - discoveredAt >= this.#discoveryIntervalMs ||
        node.consecutive_failures > 0 ||
        !node.healthy;
      tasks.push(this.#pollNode(node.name, client, discover, signal, outcomes));
    }
    await Promise.all(tasks);
    // A node removed, or given another client (a new URL or token), while its poll was out:
    // that answer is not about the node as it is now.
    for (const [name, client] of used)
      if (this.#clients.get(name) !== client) outcomes.delete(name);
    if (signal.aborted || outcomes.size === 0) return;
    this.#apply(outcomes);
  }

  /** A node's calls, each its own task in the bounded queue; never rejects. */
  async #pollNode(
    name: string,
    client: NeuronClientLike,
    discover: boolean,
    signal: AbortSignal,
    outcomes: Map<string, Outcome>,
  ): Promise<void> {
    let generation = 0;
    let suspicion = 0;
    let liveMark = 0;
    const discoveryCall = discover
      ? this.#queue.add(() => {
          signal.throwIfAborted();
          return client.discovery({ signal });
        })
      : null;
    // Awaited below; this keeps a rejection from counting as unhandled while /models runs.
    discoveryCall?.catch(() => {});
    let models: ModelsAnswer | null = null;
    let error: string | null = null;
    let unreachable = false;
    try {
      models =
        (await this.#queue.add(() => {
          signal.throwIfAborted();
          // Read as the request leaves: any change cortex makes from here on is newer.
          generation = this.#store.generation(name);
          suspicion = this.#suspicions.get(name) ?? 0;
          liveMark = this.#live.mark(name);
          this.#onModelsSent?.(name);
          return client.models({ signal });
        })) ?? null;
    } catch (caught) {
      error = messageOf(caught);
      // No answer at all (refused, reset, timed out): what a dead or partitioned host gives.
      unreachable = caught instanceof NeuronCallError && caught.connectFailed;
    }
    let discovery: DiscoveryAnswer | null = null;
    let discoveryError: string | null = null;
    if (discoveryCall) {
      try {
        discovery = (await discoveryCall) ?? null;
      } catch (caught) {
        discoveryError = messageOf(caught);
      }
    }
    if (signal.aborted) return;
    outcomes.set(name, {
      generation,
      suspicion,
      liveMark,
      models,
      discovery,
      error,
      discoveryError,
      unreachable,
    });
  }

  /** Applies one tick's outcomes in one store update; nodes not polled keep their objects. */
  #apply(outcomes: Map<string, Outcome>): void {
    const at = new Date(this.#now()).toISOString();
    const changes: HealthChange[] = [];
    this.#store.update((current) => {
      let nodes: FleetNode[] | null = null;
      for (let i = 0; i < current.nodes.length; i += 1) {
        const node = current.nodes[i] as FleetNode;
        const outcome = outcomes.get(node.name);
        if (!outcome) continue;
        const { node: next, applied } = nextNode(node, outcome, {
          at,
          unhealthyAfter: this.#unhealthyAfter,
          fresh:
            this.#store.generation(node.name) === outcome.generation &&
            !this.#store.busy(node.name),
          suspicion: this.#suspicions.get(node.name) ?? 0,
          merge: (answer, current) =>
            this.#live.merge(node.name, outcome.liveMark, answer, current),
        });
        if (applied) this.#applied.push(node.name);
        if (next === node) continue;
        if (next.healthy !== node.healthy) {
          changes.push({
            name: node.name,
            healthy: next.healthy,
            error: next.error,
            failures: next.consecutive_failures,
          });
        }
        nodes ??= current.nodes.slice();
        nodes[i] = next;
      }
      return nodes ? { ...current, nodes } : current;
    });
    // No poll of these nodes is out any more: no answer left that news could be newer than.
    for (const name of outcomes.keys()) this.#live.settle(name);
    for (const name of this.#applied.splice(0)) this.#onModelsApplied?.(name);
    // A healthy node that gave no answer at all is suspect at once and asked again now, as a
    // failed request makes it: a dead or partitioned host leaves routing after one poll timeout,
    // not after `unhealthyAfter` of them. An unhealthy one waits for the next tick.
    for (const [name, outcome] of outcomes) {
      const node = this.#store.snapshot.nodes.find((entry) => entry.name === name);
      if (outcome.unreachable && node?.healthy === true)
        this.suspect(name, `no answer to /models: ${outcome.error ?? "unreachable"}`);
    }
    for (const change of changes) {
      if (change.healthy) this.#log.info({ node: change.name }, "neuron is healthy");
      else
        this.#log.warn(
          { node: change.name, error: change.error, consecutive_failures: change.failures },
          "neuron is unhealthy",
        );
    }
    const time = this.#now();
    for (const [name, outcome] of outcomes) {
      if (outcome.discoveryError !== null) {
        this.#log.warn({ node: name, error: outcome.discoveryError }, "neuron discovery failed");
      }
      // A discovery whose /models failed was not applied; the next poll asks again.
      if (outcome.discovery === null || outcome.models === null) continue;
      this.#discoveredAt.set(name, time);
      if (!this.#onDiscovery) continue;
      try {
        this.#onDiscovery(name, outcome.discovery);
      } catch (error) {
        this.#log.error({ err: error, node: name }, "discovery listener failed");
      }
    }
  }
}
