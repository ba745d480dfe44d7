import type { IncomingMessage, ServerResponse } from "node:http";
import { type ErrorCode, type EstimateAnswer, EstimateRequest } from "@cortex/protocol";
import { FakeError, invalidBody, json, readJson } from "./http.js";

// `POST /models/estimate` of the fake neuron: answers from a table a test scripts per source,
// like the real neuron reading a GGUF header (apps/neuron/src/estimate). A source nobody
// scripted is not estimable, as a file that is not GGUF would be.

/** What the fake answers for one source: an estimate, or a refusal with its code. */
export type ScriptedEstimate =
  | EstimateAnswer
  | { readonly code: ErrorCode; readonly message: string; readonly retryAfterS?: number };

export interface FakeEstimates {
  /** Answers the request; throws a `FakeError` for the caller to answer. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Valid bodies received, in order. */
  readonly received: EstimateRequest[];
  /** What `source` is answered from now on; null: not scripted (not estimable). */
  script(source: string, answer: ScriptedEstimate | null): void;
  /** Delays every answer by `ms` (a header read over a slow link). */
  setDelay(ms: number): void;
}

export const createEstimates = (sleep: (ms: number) => Promise<void>): FakeEstimates => {
  const table = new Map<string, ScriptedEstimate>();
  const received: EstimateRequest[] = [];
  let delayMs = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readJson(req);
    if (body === undefined)
      throw new FakeError("invalid_request_error", "the request body is not valid JSON");
    const parsed = EstimateRequest.safeParse(body);
    if (!parsed.success) throw invalidBody(parsed.error.issues);
    received.push(parsed.data);
    await sleep(delayMs);
    const scripted = table.get(parsed.data.source);
    if (scripted === undefined)
      throw new FakeError(
        "not_estimable",
        `source "${parsed.data.source}" is not a GGUF file; declare vram_mb`,
      );
    if ("code" in scripted)
      throw new FakeError(
        scripted.code,
        scripted.message,
        scripted.retryAfterS === undefined ? {} : { retryAfterS: scripted.retryAfterS },
      );
    json(res, 200, scripted);
  };

  return {
    handle,
    received,
    script: (source, answer) => {
      if (answer === null) table.delete(source);
      else table.set(source, answer);
    },
    setDelay: (ms) => {
      delayMs = ms;
    },
  };
};
