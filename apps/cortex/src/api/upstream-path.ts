import type { IncomingMessage } from "node:http";
import { type Catalogue, resolveModelName } from "@cortex/catalogue";
import type { FleetSnapshot } from "@cortex/protocol";
import { indexSnapshot } from "@cortex/routing";

// Which model a `/upstream/<model>/<rest>` path names, as a pure function. Aliases may hold
// slashes (`org/name`), so the model is the longest run of leading segments that is a model id
// or alias cortex knows (llama-swap's `FindModelInPath` does the same); what follows it is the
// harness's path, passed on as the client wrote it.

/** Where the passthrough starts. */
export const UPSTREAM_PREFIX = "/upstream/";

/** The longest model name looked for (an alias is at most 200 characters, an id 128). */
const MAX_NAME_CHARS = 200;

/** `/upstream/…`, any method: the requests `/upstream/{model}/…` takes. */
export const isUpstream = (req: IncomingMessage): boolean =>
  req.url?.startsWith(UPSTREAM_PREFIX) === true;

/** A model found at the head of an upstream path. */
export interface UpstreamModel {
  /** The model's leading segments as the client wrote them (still percent-encoded). */
  readonly name: string;
  /** The canonical model id. */
  readonly id: string;
  /** The harness's path: "" when nothing followed the name, else from its `/` on, raw. */
  readonly rest: string;
}

/**
 * The model at the head of `path` (the request path after `/upstream/`, without its query):
 * the longest run of whole leading segments, each percent-decoded and joined with `/`, that
 * `known` maps to a model id. Undefined when no run does. Runs longer than any model name are
 * not tried, so a client's long path costs at most a few hundred lookups.
 */
export const modelInPath = (
  path: string,
  known: (name: string) => string | undefined,
): UpstreamModel | undefined => {
  let found: UpstreamModel | undefined;
  let name = "";
  let end = 0;
  while (end <= path.length) {
    const next = path.indexOf("/", end);
    const stop = next < 0 ? path.length : next;
    let segment: string;
    try {
      segment = decodeURIComponent(path.slice(end, stop));
    } catch {
      // A segment that does not decode is part of no name: checkPath refuses such paths anyway.
      break;
    }
    name = end === 0 ? segment : `${name}/${segment}`;
    if (name.length > MAX_NAME_CHARS) break;
    const id = name === "" ? undefined : known(name);
    if (id !== undefined) found = { name: path.slice(0, stop), id, rest: path.slice(stop) };
    if (next < 0) break;
    end = next + 1;
  }
  return found;
};

/**
 * The model id `name` stands for: a catalogue id or alias, else a model some node of the fleet
 * has (one loaded by hand); undefined when cortex knows no such model.
 */
export const knownModel =
  (catalogue: Catalogue, snapshot: FleetSnapshot) =>
  (name: string): string | undefined => {
    const profile = resolveModelName(catalogue, name);
    if (profile) return profile.id;
    // The snapshot's index is built once per snapshot: no scan of the fleet per lookup.
    return indexSnapshot(snapshot).byModel.has(name) ? name : undefined;
  };
