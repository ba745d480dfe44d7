import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import type { RequestHandler } from "express";
import { ApiError } from "./api-error.js";

const digest = (value: string): Buffer => createHash("sha256").update(value).digest();

/** The token of an `Authorization: Bearer <token>` header, or "" when there is none. */
export const bearerOf = (header: string | undefined): string =>
  /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim() ?? "";

/** Right Authorization headers remembered per check (spellings of "Bearer" and spacing vary). */
const KNOWN_HEADERS = 64;

/**
 * A bearer-token check in constant time: both sides are hashed to equal length first, and every
 * accepted token is compared (no early exit), so neither timing nor length reveals anything. No
 * tokens (or only empty ones) disables auth: a node on a trusted network, or a test.
 */
export const bearerCheck = (
  tokens: string | readonly string[],
): ((authorization: string | undefined) => boolean) => {
  const accepted = (typeof tokens === "string" ? [tokens] : tokens).filter((t) => t !== "");
  const expected = accepted.map(digest);
  // Headers already found right skip the hashing (it is on every proxied request). Only a
  // header that holds a right token can hit, so the faster answer tells a caller nothing new.
  const known = new Set<string>();
  return (authorization) => {
    if (expected.length === 0) return true;
    if (authorization !== undefined && known.has(authorization)) return true;
    const given = digest(bearerOf(authorization));
    let ok = false;
    for (const candidate of expected) ok = timingSafeEqual(given, candidate) || ok;
    if (ok && authorization !== undefined && known.size < KNOWN_HEADERS) known.add(authorization);
    return ok;
  };
};

/** The error a failed bearer check answers with. */
export const wrongToken = (): ApiError =>
  new ApiError("invalid_api_key", "missing or wrong bearer token");

/** `bearerCheck` as express middleware. */
export const requireBearer = (tokens: string | readonly string[]): RequestHandler => {
  const check = bearerCheck(tokens);
  return (req, _res, next) => {
    next(check(req.headers.authorization) ? undefined : wrongToken());
  };
};

/**
 * A client-key check over a request's headers: the key may come as `Authorization: Bearer <key>`
 * (OpenAI's clients), `x-api-key: <key>` (Anthropic's) or `api-key: <key>` (Azure OpenAI's). The
 * first of them present is the one checked, so a wrong `Authorization` is not rescued by another
 * header. Same constant-time comparison and cache as `bearerCheck`; no keys disables the check.
 */
export const clientKeyCheck = (
  keys: string | readonly string[],
): ((headers: IncomingHttpHeaders) => boolean) => {
  const check = bearerCheck(keys);
  return (headers) => {
    if (headers.authorization !== undefined) return check(headers.authorization);
    const key = headers["x-api-key"] ?? headers["api-key"];
    // A repeated header comes as a list: no single key, refused (unless auth is off).
    return check(typeof key === "string" ? `Bearer ${key}` : undefined);
  };
};

/** `clientKeyCheck` as express middleware. */
export const requireClientKey = (keys: string | readonly string[]): RequestHandler => {
  const check = clientKeyCheck(keys);
  return (req, _res, next) => {
    next(check(req.headers) ? undefined : wrongToken());
  };
};
