import {
  createServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import { ApiError, type Log } from "./api-error.js";
import { sendError } from "./errors.js";

// The inference path of both servers runs on plain node:http: express's routing, its request and
// response wrappers and body-parser cost more per request than the whole proxy hop (DESIGN.md's
// latency budget). Everything else (admin, health, metrics) stays on express.

/** Handles one request; throwing (or rejecting) answers in the OpenAI error envelope. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** The path of a request URL without its query string. */
export const pathOf = (url: string | undefined): string => {
  const path = url ?? "/";
  const query = path.indexOf("?");
  return query < 0 ? path : path.slice(0, query);
};

/** `POST /v1/<something>`: the requests the fast path takes. */
export const isInference = (req: IncomingMessage): boolean =>
  req.method === "POST" &&
  req.url !== undefined &&
  req.url.startsWith("/v1/") &&
  pathOf(req.url).length > 4;

/** Answers a failed request: the envelope while nothing was sent, else a cut connection. */
export const failRequest = (res: ServerResponse, error: unknown, log: Log): void => {
  if (!(error instanceof ApiError)) log.error({ err: error }, "unexpected error");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendError(
    res,
    error instanceof ApiError ? error : new ApiError("internal_error", "internal error"),
  );
};

/**
 * One request listener: requests that `take` goes to `fast`, everything else to `rest` (the
 * express app). A failure of `fast` is answered here, so the handler only throws.
 */
export const withFastPath = (
  take: (req: IncomingMessage) => boolean,
  fast: FastHandler,
  rest: RequestListener,
  log: Log,
): RequestListener => {
  const fail = (res: ServerResponse, error: unknown) => failRequest(res, error, log);
  return (req, res) => {
    if (take(req)) fast(req, res).catch((error: unknown) => fail(res, error));
    else rest(req, res);
  };
};

/**
 * The whole request body, refused past `limitBytes` (413) or when it is compressed (400: the
 * body is forwarded as sent, and an upstream model server need not inflate it).
 */
export const readBody = (req: IncomingMessage, limitBytes: number): Promise<Buffer> => {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding !== "identity")
    return Promise.reject(
      new ApiError(
        "invalid_request_error",
        `content-encoding ${encoding} is not supported: send the body uncompressed`,
      ),
    );
  // Too late to read: the body was consumed, or the client is gone.
  if (req.readableEnded || req.destroyed)
    return Promise.reject(
      new ApiError("invalid_request_error", "the request body could not be read"),
    );
  const declared = Number(req.headers["content-length"]);
  if (declared > limitBytes) return Promise.reject(tooLarge(limitBytes));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        // The rest is read and thrown away by node:http once the answer is sent.
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(
        new ApiError("invalid_request_error", "the request body could not be read", {
          cause: error,
        }),
      );
    };
    const onClose = () => {
      if (req.complete) return;
      cleanup();
      reject(new ApiError("invalid_request_error", "the client went away while sending the body"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
};

const tooLarge = (limitBytes: number): ApiError =>
  new ApiError(
    "payload_too_large",
    `the request body is larger than ${
      limitBytes >= 2 ** 20 ? `${Math.round(limitBytes / 2 ** 20)} MiB` : `${limitBytes} bytes`
    }`,
  );

/** The JSON object a body holds: 400 when it is empty, not JSON, or not an object. */
export const jsonObjectOf = (body: Buffer): Record<string, unknown> => {
  if (body.length === 0)
    throw new ApiError(
      "invalid_request_error",
      "the request body must be a JSON object with a model",
    );
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    throw new ApiError("invalid_request_error", "the request body is not valid JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new ApiError("invalid_request_error", "the request body must be a JSON object");
  return json as Record<string, unknown>;
};

/** Starts a server for `listener` on `host:port`; resolves once it listens. */
export const listen = (listener: RequestListener, port: number, host: string): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer(listener);
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
