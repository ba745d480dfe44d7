import { bearerCheck, parseBody, wrongToken } from "@cortex/http-kit";
import { ApiJoinRequest } from "@cortex/protocol";
import express, { type Response, type Router } from "express";
import { CortexError } from "../errors.js";
import { type JoinedNodes, StaticNodeError } from "../nodes/joined-nodes.js";
import { nodeParam } from "./node-routes.js";

/** Join attempts (right token or not) one cortex takes per window; more are answered 503. */
export const JOIN_RATE = { max: 60, windowMs: 10_000 } as const;

/** A static node named in a join or removal: 409 in the OpenAI error envelope. */
const staticConflict = (res: Response, error: StaticNodeError): void => {
  res.status(409).json({
    error: { message: error.message, type: "conflict_error", code: "static_node", param: "name" },
  });
};

const guard = (res: Response, work: () => unknown): void => {
  try {
    res.json(work());
  } catch (error) {
    if (error instanceof StaticNodeError) staticConflict(res, error);
    else throw error;
  }
};

export interface JoinRoutesOptions {
  /** cortex.yaml `join_tokens`: none turns joining off (404). */
  readonly joinTokens: readonly string[];
  readonly joined: Pick<JoinedNodes, "join">;
  readonly now?: () => number;
}

/**
 * `POST /api/neurons/join`, mounted before the admin token's check: its bearer is one of the
 * join tokens (compared in constant time), never the admin token. Bounded: a 16 KiB body, and
 * JOIN_RATE attempts per window, so guessing tokens or flooding joins gets nowhere fast.
 */
export const joinRoutes = (options: JoinRoutesOptions): Router => {
  const router = express.Router();
  const check = bearerCheck(options.joinTokens);
  const now = options.now ?? Date.now;
  let windowStart = 0;
  let attempts = 0;
  const json = express.json({ limit: "16kb", type: () => true });
  router.post(
    "/api/neurons/join",
    (req, _res, next) => {
      if (options.joinTokens.length === 0) {
        next(
          new CortexError(
            "not_found",
            "joining is off: cortex.yaml has no join_tokens, so neurons cannot join by themselves",
          ),
        );
        return;
      }
      const at = now();
      if (at - windowStart >= JOIN_RATE.windowMs) {
        windowStart = at;
        attempts = 0;
      }
      attempts += 1;
      if (attempts > JOIN_RATE.max) {
        next(
          new CortexError("overloaded", "too many join attempts; try again shortly", {
            retryAfterS: Math.ceil(JOIN_RATE.windowMs / 1000),
          }),
        );
        return;
      }
      next(check(req.headers.authorization) ? undefined : wrongToken());
    },
    json,
    (req, res) => {
      const request = parseBody(ApiJoinRequest, req.body);
      guard(res, () => options.joined.join(request));
    },
  );
  return router;
};

/** `DELETE /api/neurons/{name}` (admin token, checked by the router this is mounted on). */
export const neuronRemoveRoute = (joined: Pick<JoinedNodes, "remove">): Router => {
  const router = express.Router();
  router.delete("/api/neurons/:name", (req, res) => {
    const name = nodeParam(req.params.name);
    guard(res, () => joined.remove(name));
  });
  return router;
};
