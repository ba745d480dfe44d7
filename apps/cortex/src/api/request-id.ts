import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestHandler } from "express";

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The request's id: the client's `X-Request-Id` when sane, else a new one. It is returned as
 * `X-Request-Id` and sent on to the neuron.
 */
export const assignRequestId = (req: IncomingMessage, res: ServerResponse): string => {
  const given = req.headers["x-request-id"];
  const id = typeof given === "string" && SAFE_ID.test(given) ? given : randomUUID();
  res.setHeader("X-Request-Id", id);
  return id;
};

/** `assignRequestId` as express middleware, for every route but the inference fast path. */
export const requestId: RequestHandler = (req, res, next) => {
  assignRequestId(req, res);
  next();
};
