import { capText } from "../bounded-text.js";
import { NeuronError } from "../errors.js";
import { redirectAllowed, sourceAllowed } from "./address-policy.js";
import { displayUrl } from "./parse-source.js";

// The one way the neuron GETs a remote model file, for a download and for an estimate's range
// reads alike: the source URL checked, redirects followed by hand with every hop checked before
// it is contacted (address-policy.ts), the caller's headers (the HF token) sent to the first
// origin only.

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export interface GuardedGet {
  readonly url: string;
  /** The URL as messages show it (no query string). */
  readonly display: string;
  /** Sent to the first origin only. */
  readonly headers: Readonly<Record<string, string>>;
  /** The Range header's value, when only part of the file is wanted. */
  readonly range?: string;
  readonly maxRedirects: number;
  readonly signal: AbortSignal;
  /** The caller's error for a redirect that cannot be followed. */
  readonly failed: (reason: string) => Error;
}

/**
 * GET with redirects followed by hand, each hop checked before it is contacted: the target must
 * meet the rules of a source and be no more internal than the hop before it, at most
 * `maxRedirects` of them. A refused source URL is 400 `invalid_request_error`.
 */
export const guardedGet = async (request: GuardedGet): Promise<Response> => {
  let url = new URL(request.url);
  const origin = url.origin;
  // parse-source vouches for a source URL (0.0.0.0 and :: included) before anything is evicted;
  // an hf: URL is built on hf_endpoint, which it does not check, so this is where that one is.
  const source = sourceAllowed(url);
  if (!source.allowed) {
    throw new NeuronError(
      "invalid_request_error",
      capText(`source ${request.display} is refused: ${source.reason}`),
      { param: "source" },
    );
  }
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (url.origin === origin) Object.assign(headers, request.headers);
    if (request.range !== undefined) headers.range = request.range;
    const response = await fetch(url, { headers, redirect: "manual", signal: request.signal });
    const location = response.headers.get("location");
    if (!REDIRECTS.has(response.status) || location === null) return response;
    await response.body?.cancel();
    if (hop >= request.maxRedirects)
      throw request.failed(`more than ${request.maxRedirects} redirects`);
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      // Not quoted: a Location may carry a signed URL's secrets, and this one does not even parse.
      throw request.failed("the server redirected to an invalid URL");
    }
    const verdict = redirectAllowed(url, next);
    if (!verdict.allowed)
      throw request.failed(`refusing a redirect to ${displayUrl(next)}: ${verdict.reason}`);
    url = next;
  }
};
