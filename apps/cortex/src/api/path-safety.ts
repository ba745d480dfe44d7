import { CortexError } from "../errors.js";

// What of a client's path cortex refuses before it builds a neuron URL from it. Shared by the
// OpenAI routes and `/upstream/{model}/…`: both put the client's path into the neuron's.

/** What a path needs for checkPath's closer look: an escape, a backslash, a dot segment. */
const SUSPECT_PATH = /%|\\|(?:^|\/)\.\.?(?:\/|$)/;

/**
 * Refuses dot segments (raw or percent-encoded) and encoded slashes: the URL parser on the way
 * to the neuron would resolve `/v1/../models/load` into the neuron's admin API. Throws a 400
 * `invalid_request_error`.
 */
export const checkPath = (path: string): void => {
  // The usual path has no escapes, backslashes or dot segments: nothing to decode.
  if (!SUSPECT_PATH.test(path)) return;
  for (const segment of path.split("/")) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      decoded = "..";
    }
    if (decoded === "." || decoded === ".." || /[/\\\0]/.test(decoded))
      throw new CortexError(
        "invalid_request_error",
        "the path may not contain . or .. segments or encoded slashes",
      );
  }
};
