export { ApiError, type ErrorLog, type LevelLog, type Log, silentLog } from "./api-error.js";
export { bearerCheck, bearerOf, requireBearer, wrongToken } from "./auth.js";
export {
  BodyBudget,
  type BodyCharge,
  bodyBudgetFor,
  defaultBufferedBytes,
  type InferenceFields,
  inferenceFields,
  MAX_BODY_DEPTH,
  readBody,
  withModel,
} from "./body.js";
export { type Abortable, ClientSignal, unlessAborted } from "./client-signal.js";
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
export { JsonScanError, type Span, scanJsonObject } from "./json-scan.js";
export {
  fdWriter,
  ignoreStdioErrors,
  LogOutput,
  type LogOutputOptions,
  processLogOutput,
  type WriteChunk,
} from "./log-output.js";
export {
  type Drain,
  drainServer,
  type ShutdownLog,
  type ShutdownOptions,
  shutdownOnSignal,
  stopOnSignals,
  timerMs,
} from "./shutdown.js";
export { openEventStream, SSE_HEADERS, startEventStream } from "./sse.js";
export {
  type PipeOptions,
  type ProxyAgents,
  passHeaders,
  pipeBody,
  post,
  proxyAgents,
  stallGuard,
  targetOf,
  type UpstreamAnswer,
  UpstreamFailure,
  type UpstreamRequest,
  type UpstreamTarget,
} from "./upstream.js";
