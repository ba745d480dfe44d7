import { capText as capTo } from "@cortex/http-kit";
import { NeuronError } from "./errors.js";

/**
 * The most characters an error message, a model's `error` or a log field built from request
 * data or harness output may have. A load request may carry a 1 MB source and a harness may
 * print a 256 KB line: echoed whole, 240 failed loads once made `GET /models` 229 MB.
 */
export const MAX_MESSAGE_CHARS = 2048;

/** `text` capped at MAX_MESSAGE_CHARS (or `max`): its start and end around a marker. */
export const capText = (text: string, max = MAX_MESSAGE_CHARS): string => capTo(text, max);

/** `error` itself when its message fits, else the same error (code, param, Retry-After) capped. */
export const boundedError = (error: NeuronError): NeuronError =>
  error.message.length <= MAX_MESSAGE_CHARS
    ? error
    : new NeuronError(error.code, capText(error.message), {
        param: error.param,
        retryAfterS: error.retryAfterS,
        cause: error.cause,
      });
