export { ApiError, type Log } from "./api-error.js";
export { bearerOf, requireBearer } from "./auth.js";
export { errorHandler, notFound, parseBody, sendError } from "./errors.js";
export { openEventStream } from "./sse.js";
