import type { NodeOrigin } from "@cortex/protocol";
import { CortexError } from "../errors.js";
import type { Log } from "../log.js";
import type { FleetStore } from "./fleet-store.js";

/** A node of the fleet as cortex reaches it: cortex.yaml's entry, or a joined neuron's. */
export interface MemberTarget {
  readonly name: string;
  readonly url: string;
  readonly token: string;
  readonly priority?: number;
}

/** What membership needs of a neuron client: its identity, and closing it. */
export interface MemberClient {
  readonly url: string;
  close(): void;
}

/** What membership needs of the poller. */
export interface MemberPoller<C> {
  addTarget(name: string, client: C): void;
  removeTarget(name: string): void;
  pollNow(name?: string): Promise<void>;
}

export interface MembershipOptions<C extends MemberClient> {
  readonly store: Pick<FleetStore, "setNode" | "removeNode">;
  /** A client for a target (one per node, replaced when its URL or token changes). */
  readonly connect: (target: MemberTarget) => C;
  readonly log: Log;
  /**
   * How long a replaced or removed node's client stays open before it is closed: requests in
   * flight through it (a load, an unload) finish rather than being cut.
   */
  readonly retireMs?: number;
}

interface Member<C> {
  readonly target: MemberTarget;
  readonly origin: NodeOrigin;
  readonly client: C;
}

/** Long enough for a load or unload under way through a forgotten client to finish. */
const RETIRE_MS = 600_000;

/**
 * Which nodes are in the fleet, how each came (`static` from cortex.yaml, `joined` by itself),
 * and the client and token cortex reaches each with. Every change at run time goes through
 * here: the store's snapshot gains or loses the node (the event streams follow the snapshot),
 * the poller polls it at once or no more. Static wins: a joined node never replaces a static
 * one of the same name.
 */
export class Membership<C extends MemberClient> {
  readonly #options: MembershipOptions<C>;
  readonly #members = new Map<string, Member<C>>();
  readonly #retired = new Set<C>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #poller: MemberPoller<C> | undefined;

  constructor(options: MembershipOptions<C>) {
    this.#options = options;
  }

  /**
   * The poller polls the members from now on, each at once: called once, after the initial
   * members were added (the poller's first tick polls them then).
   */
  attach(poller: MemberPoller<C>): void {
    this.#poller = poller;
    for (const [name, member] of this.#members) poller.addTarget(name, member.client);
  }

  /** The client of a node in the fleet, or a 404. */
  client(name: string): C {
    const member = this.#members.get(name);
    if (!member) throw new CortexError("not_found", `node "${name}" is not in the fleet`);
    return member.client;
  }

  /** The node's own token, sent on every call to it ("" for none or a node not in the fleet). */
  token(name: string): string {
    return this.#members.get(name)?.target.token ?? "";
  }

  url(name: string): string | undefined {
    return this.#members.get(name)?.target.url;
  }

  origin(name: string): NodeOrigin | undefined {
    return this.#members.get(name)?.origin;
  }

  /** Every member's name and origin, in the order they were added. */
  list(): { name: string; origin: NodeOrigin }[] {
    return [...this.#members].map(([name, member]) => ({ name, origin: member.origin }));
  }

  /**
   * Adds the node or updates it (URL, token, priority, origin), and polls it at once when the
   * poller runs. A joined target for a static node's name is refused (409): static wins.
   */
  set(target: MemberTarget, origin: NodeOrigin): void {
    const present = this.#members.get(target.name);
    if (origin === "joined" && present?.origin === "static")
      throw new Error(
        `node "${target.name}" is configured in cortex.yaml; a neuron cannot join under its name`,
      );
    const same =
      present !== undefined &&
      present.target.url === target.url &&
      present.target.token === target.token;
    const client = same ? present.client : this.#options.connect(target);
    if (present && !same) this.#retire(present.client);
    this.#members.set(target.name, { target, origin, client });
    this.#options.store.setNode(target);
    if (!same) this.#poller?.addTarget(target.name, client);
    void this.#poller
      ?.pollNow(target.name)
      .catch((error: unknown) =>
        this.#options.log.warn({ node: target.name, err: error }, "poll failed"),
      );
  }

  /** Takes the node out of the fleet: no more polls, routing or event stream. */
  remove(name: string): boolean {
    const member = this.#members.get(name);
    if (!member) return false;
    this.#members.delete(name);
    this.#poller?.removeTarget(name);
    this.#options.store.removeNode(name);
    this.#retire(member.client);
    return true;
  }

  /** Closes every client, retired ones included (cortex is stopping). */
  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const client of this.#retired) client.close();
    this.#retired.clear();
    for (const member of this.#members.values()) member.client.close();
  }

  #retire(client: C): void {
    this.#retired.add(client);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#retired.delete(client);
      client.close();
    }, this.#options.retireMs ?? RETIRE_MS);
    timer.unref?.();
    this.#timers.add(timer);
  }
}
