import { randomUUID } from "node:crypto";
import type { RequestHandler, Response } from "express";

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Gives every request an id, returned as `X-Request-Id` and sent on to the neuron. */
export const requestId: RequestHandler = (req, res, next) => {
  const given = req.headers["x-request-id"];
  const id = typeof given === "string" && SAFE_ID.test(given) ? given : randomUUID();
  res.locals.requestId = id;
  res.setHeader("X-Request-Id", id);
  next();
};

/** The id `requestId` gave this request (the client's `X-Request-Id` when sane). */
export const requestIdOf = (res: Response): string => String(res.locals.requestId ?? "");
