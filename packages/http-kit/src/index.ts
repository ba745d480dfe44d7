export { ApiError, type ErrorLog, type LevelLog, type Log, silentLog } from "./api-error.js";
export {
  bearerCheck,
  bearerOf,
  clientKeyCheck,
  requireBearer,
  requireClientKey,
  wrongToken,
} from "./auth.js";
export { BodyBudget, type BodyCharge, bodyBudgetFor, readBody } from "./body.js";
export { capText } from "./cap-text.js";
export { forwardedHeaders } from "./client-headers.js";
export { type Abortable, ClientSignal, clientGone, unlessAborted } from "./client-signal.js";
export { errorHandler, notFound, parseBody, sendError } from "./errors.js";
export {
  type FastHandler,
  failRequest,
  isInference,
  type ListenOptions,
  listen,
  pathOf,
  withFastPath,
} from "./fast-path.js";
export {
  forwardedType,
  type InferenceFields,
  inferenceFields,
  type ModelCarrier,
  queryFields,
  requestFields,
  urlWithModel,
  withModel,
} from "./inference-fields.js";
export { arrayElements, type Span, scanJsonObject } from "./json-scan.js";
export {
  LogOutput,
  type LogOutputOptions,
  processLogOutput,
  type WriteChunk,
} from "./log-output.js";
export { forwardedUrl, modelInQuery, modelRoutePath } from "./model-routes.js";
export {
  type Drain,
  drainServer,
  type ShutdownOptions,
  stopOnSignals,
  trackFreshConnections,
} from "./shutdown.js";
export { openEventStream, SSE_HEADERS, startEventStream } from "./sse.js";
export {
  answerHeaders,
  type PipeOptions,
  type ProxyAgents,
  passHeaders,
  pipeBody,
  post,
  proxyAgents,
  relayAnswer,
  targetOf,
  type UpstreamAnswer,
  UpstreamFailure,
  type UpstreamRequest,
  type UpstreamTarget,
} from "./upstream.js";
