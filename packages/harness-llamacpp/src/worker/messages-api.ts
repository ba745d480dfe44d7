import { parseBody } from "@cortex/http-kit";
import express from "express";
import { type InFlight, readyEngine, withConnection } from "./connection.js";
import { MessageEventWriter, messageEnvelope, messageObject } from "./messages-events.js";
import {
  CountTokensRequest,
  MessagesRequest,
  samplingOfMessages,
  turnsOfMessages,
} from "./messages-request.js";
import { logStreamFailure, NamedEventStream } from "./named-events.js";
import type { WorkerContext } from "./server.js";

/**
 * Mounts Anthropic's `POST /v1/messages` and `POST /v1/messages/count_tokens`, so a Claude-style
 * client (`@anthropic-ai/sdk`'s messages.create / messages.stream) works against this harness's
 * model. Errors keep the OpenAI envelope every server of the project answers with; Anthropic's
 * SDK still raises an APIError with the status and message. A generation that fails after the
 * stream started ends it with Anthropic's `error` event.
 */
export const mountMessagesApi = (
  app: express.Express,
  context: WorkerContext,
  inflight: InFlight,
): void => {
  const json = express.json({ limit: "20mb", type: () => true });

  app.post("/v1/messages", json, async (req, res) => {
    const body = parseBody(MessagesRequest, req.body);
    const engine = readyEngine(context);
    const turns = turnsOfMessages(body);
    const sampling = samplingOfMessages(body);
    const envelope = messageEnvelope(context.model);
    await withConnection(res, inflight, async (signal) => {
      if (!body.stream) {
        const result = await engine.chat(turns, sampling, { signal });
        res.json(messageObject(envelope, result, sampling.stop));
        return;
      }
      const stream = new NamedEventStream(res);
      const writer = new MessageEventWriter(stream, envelope, () => engine.countTokens(turns));
      try {
        const result = await engine.chat(turns, sampling, {
          signal,
          onText: (text) => writer.delta(text),
        });
        writer.finish(result, sampling.stop);
      } catch (error) {
        // Before the first event the error is still a JSON answer; a client that left or a
        // shutdown is withConnection's to handle.
        if (!stream.started || signal.aborted) throw error;
        logStreamFailure("POST /v1/messages", error);
        writer.fail();
      }
    });
  });

  // Tokenizing needs no sequence: answered at once, even while every slot generates.
  app.post("/v1/messages/count_tokens", json, (req, res) => {
    const body = parseBody(CountTokensRequest, req.body);
    const engine = readyEngine(context);
    res.json({ input_tokens: engine.countTokens(turnsOfMessages(body)) });
  });
};
