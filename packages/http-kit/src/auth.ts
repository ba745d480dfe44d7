import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import { ApiError } from "./api-error.js";

const digest = (value: string): Buffer => createHash("sha256").update(value).digest();

/** The token of an `Authorization: Bearer <token>` header, or "" when there is none. */
export const bearerOf = (header: string | undefined): string =>
  /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim() ?? "";

/**
 * Bearer-token check in constant time: both sides are hashed to equal length first, and every
 * accepted token is compared (no early exit), so neither timing nor length reveals anything. No
 * tokens (or only empty ones) disables auth: a node on a trusted network, or a test.
 */
export const requireBearer = (tokens: string | readonly string[]): RequestHandler => {
  const accepted = (typeof tokens === "string" ? [tokens] : tokens).filter((t) => t !== "");
  const expected = accepted.map(digest);
  return (req, _res, next) => {
    if (expected.length === 0) return next();
    const given = digest(bearerOf(req.headers.authorization));
    let ok = false;
    for (const candidate of expected) ok = timingSafeEqual(given, candidate) || ok;
    if (ok) return next();
    next(new ApiError("invalid_api_key", "missing or wrong bearer token"));
  };
};
