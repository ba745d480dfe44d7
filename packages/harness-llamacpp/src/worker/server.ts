import { ApiError, notFound, parseBody } from "@cortex/http-kit";
import express from "express";
import { ChatChunkWriter, toolCallsOf } from "./chat-answer.js";
import { chatTurnsOf, toolUseOf } from "./chat-input.js";
import { envelopeFor, type InFlight, readyEngine, withConnection } from "./connection.js";
import { constraintsOf } from "./constraints.js";
import type { Engine } from "./engine.js";
import { errorHandler } from "./http-error.js";
import { mountMessagesApi } from "./messages-api.js";
import {
  ChatRequest,
  CompletionRequest,
  EmbeddingRequest,
  type Sampling,
  samplingOf,
} from "./requests.js";
import {
  chatCompletion,
  completionUsageChunk,
  embeddingList,
  modelList,
  textCompletion,
  usageOf,
} from "./responses.js";
import { mountResponsesApi } from "./responses-api.js";
import { EventStream } from "./sse.js";

export type WorkerPhase = "loading" | "ready" | "stopping";

/** What the HTTP layer reads from the process around it. */
export interface WorkerContext {
  /** The name the model is served under (`--alias`). */
  readonly model: string;
  readonly created: number;
  phase(): WorkerPhase;
  engine(): Engine | undefined;
}

export const createWorkerApp = (context: WorkerContext, inflight: InFlight): express.Express => {
  const app = express();
  app.disable("x-powered-by");
  const json = express.json({ limit: "20mb", type: () => true });

  app.get("/health", (_req, res) => {
    const phase = context.phase();
    const engine = context.engine();
    res.status(phase === "ready" ? 200 : 503).json({
      status: phase === "ready" ? "ok" : phase,
      model: context.model,
      ...(engine
        ? {
            slots: engine.parallel,
            ...engine.load(),
            context_size: engine.contextSize,
            threads: engine.threads,
          }
        : {}),
    });
  });

  app.get("/v1/models", (_req, res) => {
    res.json(modelList(context.model, context.created));
  });

  app.post("/v1/chat/completions", json, async (req, res) => {
    const body = parseBody(ChatRequest, req.body);
    const engine = readyEngine(context);
    const turns = chatTurnsOf(body.messages);
    const tools = toolUseOf(body);
    const sampling: Sampling = { ...samplingOf(body), ...(tools ? { tools } : {}) };
    // A schema or a combination the harness cannot honour is a 400 before a slot is waited for.
    constraintsOf(sampling);
    const envelope = envelopeFor(context, "chatcmpl");
    await withConnection(res, inflight, async (signal) => {
      if (!body.stream) {
        const result = await engine.chat(turns, sampling, { signal });
        const answer = { text: result.text, toolCalls: toolCallsOf(result) };
        res.json(chatCompletion(envelope, answer, result.finishReason, usageOf(result)));
        return;
      }
      const writer = new ChatChunkWriter(new EventStream(res), envelope);
      const result = await engine.chat(turns, sampling, {
        signal,
        onText: (text) => writer.text(text),
        onToolCall: (event) => writer.toolCall(event),
      });
      writer.finish(result, body.stream_options?.include_usage ? usageOf(result) : undefined);
    });
  });

  app.post("/v1/completions", json, async (req, res) => {
    const body = parseBody(CompletionRequest, req.body);
    const engine = readyEngine(context);
    const prompt = typeof body.prompt === "string" ? body.prompt : (body.prompt[0] ?? "");
    const sampling = samplingOf(body);
    constraintsOf(sampling);
    const envelope = envelopeFor(context, "cmpl");
    const prefix = body.echo ? prompt : "";
    await withConnection(res, inflight, async (signal) => {
      if (!body.stream) {
        const result = await engine.complete(prompt, sampling, { signal });
        const usage = usageOf(result);
        res.json(textCompletion(envelope, prefix + result.text, result.finishReason, usage));
        return;
      }
      const stream = new EventStream(res);
      if (prefix) stream.send(textCompletion(envelope, prefix, null));
      const result = await engine.complete(prompt, sampling, {
        signal,
        onText: (text) => stream.send(textCompletion(envelope, text, null)),
      });
      stream.send(textCompletion(envelope, "", result.finishReason));
      if (body.stream_options?.include_usage) {
        stream.send(completionUsageChunk(envelope, usageOf(result)));
      }
      stream.done();
    });
  });

  app.post("/v1/embeddings", json, async (req, res) => {
    const body = parseBody(EmbeddingRequest, req.body);
    const engine = readyEngine(context);
    const dimensions = body.dimensions ?? undefined;
    // llama.cpp gives the model's whole vector; shortening it (as OpenAI's text-embedding-3
    // models do) is only meaningful for models trained for it, so any other size is refused.
    if (dimensions !== undefined && dimensions !== engine.embeddingSize) {
      throw new ApiError(
        "invalid_request_error",
        `dimensions ${dimensions} is not supported: this model's embeddings have ${engine.embeddingSize} dimensions; send ${engine.embeddingSize} or leave dimensions out`,
        { param: "dimensions" },
      );
    }
    const inputs = typeof body.input === "string" ? [body.input] : body.input;
    const encoding = body.encoding_format ?? "float";
    await withConnection(res, inflight, async (signal) => {
      const { vectors, promptTokens } = await engine.embed(inputs, signal);
      res.json(embeddingList(context.model, vectors, promptTokens, encoding));
    });
  });

  mountResponsesApi(app, context, inflight);
  mountMessagesApi(app, context, inflight);
  app.use(notFound);
  app.use(errorHandler);
  return app;
};
