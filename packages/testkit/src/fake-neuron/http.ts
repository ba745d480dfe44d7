import type { IncomingMessage, ServerResponse } from "node:http";
import { ERROR_CODES, type ErrorCode, errorEnvelope } from "@cortex/protocol";

// What every part of the fake neuron shares on the wire: its one error type and how a body is
// read and an answer (or an error envelope) written.

export class FakeError extends Error {
  readonly code: ErrorCode;
  readonly param: string | null;
  readonly retryAfterS: number | null;

  constructor(
    code: ErrorCode,
    message: string,
    options: { param?: string; retryAfterS?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterS = options.retryAfterS ?? null;
  }
}

export const json = (res: ServerResponse, status: number, body: unknown): void => {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
};

export const sendError = (res: ServerResponse, error: FakeError): void => {
  if (error.retryAfterS !== null && !res.headersSent)
    res.setHeader("retry-after", String(error.retryAfterS));
  json(res, ERROR_CODES[error.code].status, errorEnvelope(error.code, error.message, error.param));
};

/** The body as JSON; `undefined` when it is not JSON (or the client left mid-body). */
export const readJson = async (req: IncomingMessage): Promise<unknown> => {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
};

export const invalidBody = (
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
) => {
  const first = issues[0];
  return new FakeError(
    "invalid_request_error",
    issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`).join("; "),
    { param: first ? first.path.join(".") || "body" : "body" },
  );
};
