import type { IncomingMessage, ServerResponse } from "node:http";
import { ApiError, type BodyBudget, readBody, scanJsonObject } from "@cortex/http-kit";

// An Ollama request's body, parsed: it must be translated, so unlike `/v1` it becomes a tree.
// It is read under the same limits as the OpenAI route's (size, the shared budget), and scanned
// first, so only a body that is JSON and nested no deeper than the OpenAI route allows is
// parsed (and later serialised again without a deep recursion).

/** How deeply a body may nest objects and arrays: the OpenAI route's bound. */
const MAX_DEPTH = 64;

const NOTHING_WANTED: ReadonlySet<string> = new Set();

/** What a client is told for each way its body fails the scan. */
const REFUSALS: Readonly<Record<string, string>> = {
  empty: "the request body must be a JSON object",
  invalid: "the request body is not valid JSON",
  too_deep: `the request body nests objects and arrays deeper than ${MAX_DEPTH} levels`,
  not_object: "the request body must be a JSON object",
};

/**
 * The request's body as a JSON object: 413 past `limitBytes`, 503 when `budget` cannot hold it
 * (charged until the answer closes), 400 when it is not a JSON object or nests too deeply.
 */
export const readJsonBody = async (
  req: IncomingMessage,
  res: ServerResponse,
  limitBytes: number,
  budget?: BodyBudget,
): Promise<Record<string, unknown>> => {
  const body = await readBody(req, limitBytes, budget?.charge(res));
  try {
    scanJsonObject(body, NOTHING_WANTED, MAX_DEPTH);
  } catch (error) {
    const problem = (error as { problem?: unknown }).problem;
    if (typeof problem === "string" && Object.hasOwn(REFUSALS, problem))
      throw new ApiError("invalid_request_error", REFUSALS[problem] as string);
    throw error;
  }
  return JSON.parse(body.toString("utf8")) as Record<string, unknown>;
};
