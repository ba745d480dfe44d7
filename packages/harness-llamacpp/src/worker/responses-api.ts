import { ApiError, parseBody } from "@cortex/http-kit";
import express from "express";
import { type InFlight, readyEngine, withConnection } from "./connection.js";
import { ContextOverflowError } from "./engine.js";
import { logStreamFailure, NamedEventStream } from "./named-events.js";
import { unixNow } from "./responses.js";
import { echoOf, finishedResponse, ResponseEventWriter } from "./responses-events.js";
import { ResponsesRequest, samplingOfResponse, turnsOfResponse } from "./responses-request.js";
import type { WorkerContext } from "./server.js";

/**
 * An error named in the Responses API's own fields: a prompt too long for the context is
 * `input`'s, a schema the grammar compiler refuses is `text.format`'s (chat's
 * `response_format`).
 */
const atInput = (error: unknown): unknown =>
  error instanceof ContextOverflowError
    ? new ApiError("context_length_exceeded", error.message, { param: "input" })
    : error instanceof ApiError && error.param?.startsWith("response_format")
      ? new ApiError(error.code, error.message.replaceAll("response_format", "text.format"), {
          param: `text.format${error.param.slice("response_format".length)}`,
        })
      : error;

/**
 * Mounts `POST /v1/responses`: OpenAI's Responses API, stateless, over the same engine and
 * slots as chat completions (the `openai` SDK's `responses.create` / `responses.stream` and the
 * Vercel AI SDK's `openai(model)` speak it). A client that leaves stops its generation; a
 * generation that fails after the stream started ends it with `error` and `response.failed`.
 */
export const mountResponsesApi = (
  app: express.Express,
  context: WorkerContext,
  inflight: InFlight,
): void => {
  const json = express.json({ limit: "20mb", type: () => true });

  app.post("/v1/responses", json, async (req, res) => {
    const body = parseBody(ResponsesRequest, req.body);
    const engine = readyEngine(context);
    const turns = turnsOfResponse(body);
    const sampling = samplingOfResponse(body);
    const echo = echoOf(body, context.model, sampling.temperature, unixNow());
    await withConnection(res, inflight, async (signal) => {
      if (!body.stream) {
        const result = await engine.chat(turns, sampling, { signal }).catch((error: unknown) => {
          throw atInput(error);
        });
        res.json(finishedResponse(echo, result));
        return;
      }
      const stream = new NamedEventStream(res);
      const writer = new ResponseEventWriter(stream, echo);
      try {
        const result = await engine.chat(turns, sampling, {
          signal,
          onText: (text) => writer.delta(text),
        });
        writer.finish(result);
      } catch (error) {
        // Before the first event the error is still a JSON answer; a client that left or a
        // shutdown is withConnection's to handle.
        if (!stream.started || signal.aborted) throw atInput(error);
        logStreamFailure("POST /v1/responses", error);
        writer.fail();
      }
    });
  });
};
