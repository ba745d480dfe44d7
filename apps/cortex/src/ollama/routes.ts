import type { IncomingHttpHeaders } from "node:http";
import type { Catalogue } from "@cortex/catalogue";
import {
  ApiError,
  type BodyBudget,
  bearerOf,
  type Log,
  parseBody,
  requireClientKey,
} from "@cortex/http-kit";
import type { ApiLoadAnswer, FleetSnapshot } from "@cortex/protocol";
import express, { type Request, type Response, type Router } from "express";
import { z } from "zod";
import { CortexError } from "../errors.js";
import { AnswerStream, wholeAnswer } from "./answers.js";
import { ns } from "./durations.js";
import { readJsonBody } from "./json-body.js";
import { Loopback } from "./loopback.js";
import { isKnownModel, ollamaPs, ollamaShow, ollamaTags, resolveOllamaName } from "./models.js";
import { NdjsonWriter } from "./ndjson.js";
import { ollamaErrorHandler } from "./ollama-error.js";
import { ignoredNote, OllamaModelName, type RequestPlan } from "./options.js";
import { type AnswerTranslation, relay } from "./relay.js";
import { chatPlan, chatShape } from "./translate-chat.js";
import { embedAnswer, embeddingsAnswer, embeddingsPlan, embedPlan } from "./translate-embed.js";
import { generatePlan, generateShape } from "./translate-generate.js";

export interface OllamaRoutesOptions {
  readonly version: string;
  readonly startedAtMs: number;
  /** The client keys, as for `/v1`. */
  readonly apiKeys: readonly string[];
  readonly snapshot: () => FleetSnapshot;
  readonly catalogue: () => Catalogue;
  /** Cortex's own address, once it listens: its OpenAI endpoint answers the inference routes. */
  readonly selfUrl: () => string | undefined;
  /** Loads a model as `POST /api/models/load` does (a request with an empty prompt). */
  readonly load: (model: string) => Promise<ApiLoadAnswer>;
  /** Unloads a model from every node, as `POST /api/models/unload` (`keep_alive: 0`). */
  readonly unload: (model: string) => Promise<unknown>;
  readonly log: Pick<Log, "debug" | "error">;
  /** The largest request body (the OpenAI route's); 20 MiB by default. */
  readonly bodyLimitBytes?: number;
  /** Bytes of bodies all requests may hold together, shared with the OpenAI route. */
  readonly bodyBudget?: BodyBudget;
}

export interface OllamaRoutes {
  readonly router: Router;
  /** Closes the connections to cortex's own endpoint (cortex's stop). */
  readonly close: () => void;
}

const BODY_LIMIT_BYTES = 20 * 2 ** 20;
/** `/api/show` bodies name a model: small. */
const SHOW_LIMIT_BYTES = 64 * 2 ** 10;

const ShowRequest = z
  .object({ model: OllamaModelName.optional(), name: OllamaModelName.optional() })
  .refine((request) => request.model !== undefined || request.name !== undefined, {
    message: "model is required",
    path: ["model"],
  });

/** The client's key, whichever header it came in, to send on as `Authorization: Bearer`. */
const credentialOf = (headers: IncomingHttpHeaders): string | undefined => {
  if (headers.authorization !== undefined) return bearerOf(headers.authorization) || undefined;
  const key = headers["x-api-key"] ?? headers["api-key"];
  return typeof key === "string" ? key : undefined;
};

/** What an inference route is: its request's plan, and its answers. */
interface InferenceRoute {
  readonly plan: (raw: unknown, resolve: (name: string) => string) => RequestPlan;
  /** How the answer of cortex's endpoint comes back, for the name the client asked for. */
  readonly translation: (plan: RequestPlan & { kind: "infer" }, model: string) => AnswerTranslation;
  /** The answer to a load or an unload (a request with nothing to answer). */
  readonly settled: (
    model: string,
    reason: "load" | "unload",
    times: { total_duration: number; load_duration: number },
  ) => Record<string, unknown>;
}

const createdAt = (): string => new Date().toISOString();

/** A text answer's translation: chat's `message` or generate's `response`, from either API. */
const textTranslation =
  (shape: typeof chatShape) =>
  (plan: RequestPlan & { kind: "infer" }, model: string): AnswerTranslation => {
    const source = plan.path === "/v1/completions" ? "completion" : "chat";
    return {
      whole: (answer, timing) => wholeAnswer(answer, { model, createdAt, source, shape, timing }),
      stream: () => new AnswerStream({ model, createdAt, source, shape }),
    };
  };

const notStreamed = (): never => {
  throw new CortexError("internal_error", "embeddings are never streamed");
};

const ROUTES: Readonly<Record<"chat" | "generate" | "embed" | "embeddings", InferenceRoute>> = {
  chat: {
    plan: chatPlan,
    translation: textTranslation(chatShape),
    settled: (model, reason) => ({
      model,
      created_at: createdAt(),
      message: { role: "assistant", content: "" },
      done: true,
      done_reason: reason,
    }),
  },
  generate: {
    plan: generatePlan,
    translation: textTranslation(generateShape),
    settled: (model, reason) => ({
      model,
      created_at: createdAt(),
      response: "",
      done: true,
      done_reason: reason,
    }),
  },
  embed: {
    plan: embedPlan,
    translation: (_plan, model) => ({
      whole: (answer, timing) => embedAnswer(answer, model, timing),
      stream: notStreamed,
    }),
    settled: (model, _reason, times) => ({
      model,
      embeddings: [],
      ...times,
      prompt_eval_count: 0,
    }),
  },
  embeddings: {
    plan: embeddingsPlan,
    translation: () => ({ whole: (answer) => embeddingsAnswer(answer), stream: notStreamed }),
    settled: () => ({ embedding: [] }),
  },
};

/**
 * Ollama's API on cortex, under the client keys: the model list, the loaded models, a model's
 * facts and the version from what cortex knows in-process; chat, generate and embeddings
 * translated to cortex's own OpenAI endpoint over loopback and back. Only these eight paths
 * are taken: every other `/api/` path goes on to the admin API. Errors are Ollama's
 * `{"error": "..."}`.
 */
export const ollamaRoutes = (options: OllamaRoutesOptions): OllamaRoutes => {
  const router = express.Router();
  const loopback = new Loopback(options.selfUrl);
  const key = requireClientKey(options.apiKeys);
  const startedAt = new Date(options.startedAtMs).toISOString();
  const bodyLimit = options.bodyLimitBytes ?? BODY_LIMIT_BYTES;
  const resolve = (name: string) =>
    resolveOllamaName(options.snapshot(), options.catalogue(), name);

  router.get("/api/tags", key, (_req, res) => {
    res.json(ollamaTags(options.snapshot(), options.catalogue(), startedAt));
  });
  router.get("/api/ps", key, (_req, res) => {
    res.json(ollamaPs(options.snapshot(), options.catalogue()));
  });
  router.get("/api/version", key, (_req, res) => {
    res.json({ version: options.version });
  });
  router.post("/api/show", key, async (req, res) => {
    const request = parseBody(ShowRequest, await readJsonBody(req, res, SHOW_LIMIT_BYTES));
    const name = request.model ?? request.name ?? "";
    res.json(ollamaShow(options.snapshot(), options.catalogue(), name, startedAt));
  });

  /** A load or an unload, answered in the route's shape once it is done. */
  const settle = async (
    route: InferenceRoute,
    plan: RequestPlan & { kind: "load" | "unload" },
    requested: string,
    startedMs: number,
    res: Response,
  ): Promise<void> => {
    let loadMs = 0;
    if (plan.kind === "load") {
      const loaded = await options.load(plan.model);
      loadMs = loaded.already_loaded ? 0 : loaded.load_ms;
    } else {
      try {
        await options.unload(plan.model);
      } catch (error) {
        // A model cortex serves but has loaded nowhere is as unloaded as it gets.
        const known = isKnownModel(options.snapshot(), options.catalogue(), plan.model);
        if (!(error instanceof ApiError && error.code === "model_not_found" && known)) throw error;
      }
    }
    const answer = route.settled(requested, plan.kind, {
      total_duration: ns(performance.now() - startedMs),
      load_duration: ns(loadMs),
    });
    if (plan.stream) new NdjsonWriter(res).end([answer]);
    else res.json(answer);
  };

  const inference =
    (route: InferenceRoute) =>
    async (req: Request, res: Response): Promise<void> => {
      const startedMs = performance.now();
      const raw = await readJsonBody(req, res, bodyLimit, options.bodyBudget);
      const plan = route.plan(raw, resolve);
      // Validated by the plan: the name as the client sent it, which Ollama's answers repeat.
      const requested = raw.model as string;
      if (plan.kind !== "infer") return settle(route, plan, requested, startedMs, res);
      const requestId = String(res.getHeader("x-request-id") ?? "");
      if (plan.ignored.length > 0)
        options.log.debug(
          { request_id: requestId, model: plan.model, ignored: ignoredNote(plan.ignored) },
          "ollama request: fields with no meaning behind an OpenAI endpoint ignored",
        );
      const credential = credentialOf(req.headers);
      await relay(loopback, {
        res,
        path: plan.path,
        body: plan.body,
        stream: plan.stream,
        headers: {
          "x-request-id": requestId,
          ...(credential === undefined ? {} : { authorization: `Bearer ${credential}` }),
        },
        startedMs,
        translation: route.translation(plan, requested),
      });
    };

  router.post("/api/chat", key, inference(ROUTES.chat));
  router.post("/api/generate", key, inference(ROUTES.generate));
  router.post("/api/embed", key, inference(ROUTES.embed));
  router.post("/api/embeddings", key, inference(ROUTES.embeddings));
  router.use(ollamaErrorHandler(options.log));

  return { router, close: () => loopback.close() };
};
