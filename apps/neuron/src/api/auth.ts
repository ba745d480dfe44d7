import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import { NeuronError } from "../errors.js";

const digest = (value: string): Buffer => createHash("sha256").update(value).digest();

/**
 * Bearer-token check in constant time: both sides are hashed to equal length first, so neither
 * the comparison nor a length check reveals anything about the token. An empty token disables
 * auth (a node on a trusted network, or a test).
 */
export const requireToken = (token: string): RequestHandler => {
  const expected = digest(token);
  return (req, _res, next) => {
    if (token === "") return next();
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    const given = digest(match?.[1]?.trim() ?? "");
    if (match && timingSafeEqual(given, expected)) return next();
    next(new NeuronError("invalid_api_key", "missing or wrong bearer token"));
  };
};
