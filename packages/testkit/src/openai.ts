import { readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";

/**
 * Validation against the official OpenAI response schemas (a subset of OpenAI's OpenAPI spec,
 * copied from the project's shared contract into `openai-schemas.json`). Used by tests of every
 * server that answers OpenAI requests, so "looks like OpenAI" is checked, not assumed.
 */

export type OpenAISchemaName =
  | "CreateChatCompletionResponse"
  | "CreateChatCompletionStreamResponse"
  | "CreateCompletionResponse"
  | "CreateEmbeddingResponse"
  | "ListModelsResponse"
  | "Model"
  | "ErrorResponse";

const SCHEMA_FILE = new URL("../openai-schemas.json", import.meta.url);

let ajv: Ajv | undefined;
const compiled = new Map<OpenAISchemaName, ValidateFunction>();

const validatorFor = (name: OpenAISchemaName): ValidateFunction => {
  const cached = compiled.get(name);
  if (cached) return cached;
  if (!ajv) {
    const document = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as Record<string, unknown>;
    ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat("date", /^\d{4}-\d{2}-\d{2}$/);
    ajv.addFormat("uri", (value: string) => URL.canParse(value));
    // OpenAI-specific formats: the type check (integer, number) is the whole constraint.
    ajv.addFormat("unixtime", true);
    ajv.addFormat("float", true);
    ajv.addSchema(document, "openai");
  }
  const validate = ajv.getSchema(`openai#/components/schemas/${name}`);
  if (!validate) throw new Error(`no OpenAI schema named ${name}`);
  compiled.set(name, validate);
  return validate;
};

/** Returns the problems found, one line each; an empty list means the value is valid. */
export const openAIProblems = (name: OpenAISchemaName, value: unknown): string[] => {
  const validate = validatorFor(name);
  if (validate(value)) return [];
  return (validate.errors ?? []).map(
    (error) => `${name}${error.instancePath || ""}: ${error.message ?? "invalid"}`,
  );
};
