export { ApiError, type Log } from "./api-error.js";
export { bearerCheck, bearerOf, requireBearer, wrongToken } from "./auth.js";
export { type Abortable, ClientSignal, unlessAborted } from "./client-signal.js";
export { errorHandler, notFound, parseBody, sendError } from "./errors.js";
export {
  type FastHandler,
  failRequest,
  isInference,
  jsonObjectOf,
  listen,
  pathOf,
  readBody,
  withFastPath,
} from "./fast-path.js";
export { openEventStream } from "./sse.js";
export {
  type PipeOptions,
  type ProxyAgents,
  passHeaders,
  pipeBody,
  post,
  proxyAgents,
  targetOf,
  type UpstreamAnswer,
  UpstreamFailure,
  type UpstreamRequest,
  type UpstreamTarget,
} from "./upstream.js";
