import type {
  ApiJoinAnswer,
  ApiJoinRequest,
  ApiNodeRemoveAnswer,
  FleetEvent,
} from "@cortex/protocol";
import { CortexError } from "../errors.js";
import type { MemberTarget } from "../fleet/membership.js";
import type { Log } from "../log.js";
import type { JoinedRow } from "../state/joined-table.js";

/** Where joined nodes are kept across restarts (the state database's joined_nodes table). */
export interface JoinedStore {
  read(): readonly JoinedRow[];
  save(row: JoinedRow): void;
  remove(name: string): void;
}

/** What joining needs of the fleet's membership. */
export interface JoinMembers {
  origin(name: string): "static" | "joined" | undefined;
  set(target: MemberTarget, origin: "joined"): void;
  remove(name: string): boolean;
}

export interface JoinedNodesOptions {
  readonly store: JoinedStore;
  readonly members: JoinMembers;
  /** Forgets the node's drain (a forgotten node's maintenance ends with it). */
  readonly forgetDrain: (name: string) => void;
  readonly emit: (event: FleetEvent) => void;
  readonly log: Log;
  readonly now?: () => number;
}

/**
 * A request names a node cortex.yaml configures: static wins (409, not one of the shared error
 * codes, so the route writes it itself).
 */
export class StaticNodeError extends Error {
  readonly node: string;

  constructor(node: string, message: string) {
    super(message);
    this.name = "StaticNodeError";
    this.node = node;
  }
}

/**
 * Neurons that joined by themselves (`POST /api/neurons/join`) and their removal
 * (`DELETE /api/neurons/{name}`). Every change is written to the database first (a failed
 * write changes nothing), then applied to the running fleet: a joined node is polled at once
 * and gets its event stream like a static one. A node's token is stored but never logged.
 */
export class JoinedNodes {
  readonly #options: JoinedNodesOptions;
  readonly #now: () => number;

  constructor(options: JoinedNodesOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Puts every stored joined node back in the fleet (at start); a static name wins and is skipped. */
  restore(): number {
    let restored = 0;
    for (const row of this.#options.store.read()) {
      if (this.#options.members.origin(row.name) === "static") {
        this.#options.log.warn(
          { node: row.name },
          "a joined node has the name of a cortex.yaml neuron; the static one is used",
        );
        continue;
      }
      this.#options.members.set({ name: row.name, url: row.url, token: row.token }, "joined");
      restored += 1;
    }
    return restored;
  }

  /** Adds the neuron, or updates its URL and token (a rejoin); 409 for a static node's name. */
  join(request: ApiJoinRequest): ApiJoinAnswer {
    const { name, url, token } = request;
    if (this.#options.members.origin(name) === "static")
      throw new StaticNodeError(
        name,
        `node "${name}" is configured in cortex.yaml; a neuron cannot join under its name`,
      );
    const nowMs = this.#now();
    const rejoin = this.#options.members.origin(name) === "joined";
    this.#options.store.save({ name, url, token, joinedAtMs: nowMs, lastJoinAtMs: nowMs });
    this.#options.members.set({ name, url, token }, "joined");
    this.#options.log.info(
      { node: name, url, rejoin },
      rejoin ? "neuron rejoined" : "neuron joined",
    );
    this.#options.emit({ type: "node_joined", at: new Date(nowMs).toISOString(), node: name, url });
    return { name, polled: true };
  }

  /** Forgets a joined node: no more polls, routing or event stream; its drain goes too. */
  remove(name: string): ApiNodeRemoveAnswer {
    const origin = this.#options.members.origin(name);
    if (origin === "static")
      throw new StaticNodeError(
        name,
        `node "${name}" is configured in cortex.yaml: remove it from cortex.yaml (it reloads on SIGHUP)`,
      );
    if (origin === undefined)
      throw new CortexError("not_found", `node "${name}" is not a joined node`, { param: "name" });
    this.#options.store.remove(name);
    this.#forget(name);
    this.#options.log.info({ node: name }, "joined neuron removed");
    return { name, removed: true };
  }

  /**
   * A static node took the name of a joined one (cortex.yaml gained it): the joined row goes,
   * so a restart does not bring it back. The membership is the caller's to change.
   */
  superseded(name: string): void {
    this.#options.store.remove(name);
  }

  #forget(name: string): void {
    this.#options.members.remove(name);
    this.#options.forgetDrain(name);
    this.#options.emit({
      type: "node_removed",
      at: new Date(this.#now()).toISOString(),
      node: name,
    });
  }
}
