import { ApiError } from "@cortex/http-kit";
import {
  type Llama,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  type LlamaModel,
} from "node-llama-cpp";
import type { ReadyTools } from "./chat-run.js";
import type { Constraints } from "./constraints.js";

/** Grammars kept ready; a client repeating its schema (the usual case) skips llama.cpp's parse. */
const GRAMMARS_KEPT = 64;

/** llama.cpp could not parse a grammar built from a client's schema. */
export class GrammarError extends Error {
  constructor(cause: unknown) {
    super(`llama.cpp could not use the grammar: ${cause instanceof Error ? cause.message : cause}`);
    this.name = "GrammarError";
  }
}

/**
 * llama.cpp grammars by their GBNF text, the most recently used kept. Each is parsed once by
 * llama.cpp before it is handed out, so a grammar it rejects fails here (GrammarError), before
 * a sequence is taken, and is not kept.
 */
export class GrammarCache {
  readonly #llama: Llama;
  readonly #model: LlamaModel;
  readonly #kept = new Map<string, Promise<LlamaGrammar>>();

  constructor(llama: Llama, model: LlamaModel) {
    this.#llama = llama;
    this.#model = model;
  }

  get(text: string): Promise<LlamaGrammar> {
    const kept = this.#kept.get(text);
    if (kept) {
      this.#kept.delete(text);
      this.#kept.set(text, kept);
      return kept;
    }
    const created = this.#create(text);
    this.#kept.set(text, created);
    created.catch(() => {
      if (this.#kept.get(text) === created) this.#kept.delete(text);
    });
    for (const oldest of this.#kept.keys()) {
      if (this.#kept.size <= GRAMMARS_KEPT) break;
      this.#kept.delete(oldest);
    }
    return created;
  }

  /** A request's constraints with their grammars parsed; one llama.cpp rejects is a 400. */
  async ready(
    constraints: Constraints,
  ): Promise<{ format: LlamaGrammar | undefined; tools: ReadyTools | undefined }> {
    const plan = constraints.tools;
    const [format, names, parameters] = await Promise.all([
      this.#parsed(constraints.format, "response_format"),
      this.#parsed(plan?.names, "tools"),
      Promise.all(
        [...(plan?.parameters ?? [])].map(
          async ([name, text]) => [name, await this.#parsed(text, "tools")] as const,
        ),
      ),
    ]);
    if (!plan) return { format, tools: undefined };
    const ready = new Map<string, LlamaGrammar>();
    for (const [name, grammar] of parameters) if (grammar) ready.set(name, grammar);
    const { choice, functions, allowed } = plan;
    return {
      format,
      tools: { choice, functions, allowed, parameters: ready, ...(names ? { names } : {}) },
    };
  }

  async #parsed(text: string | undefined, param: string): Promise<LlamaGrammar | undefined> {
    if (text === undefined) return undefined;
    try {
      return await this.get(text);
    } catch (error) {
      if (error instanceof GrammarError)
        throw new ApiError("invalid_request_error", `${param}: ${error.message}`, { param });
      throw error;
    }
  }

  async #create(text: string): Promise<LlamaGrammar> {
    try {
      const grammar = await this.#llama.createGrammar({ grammar: text });
      // node-llama-cpp parses the text when an evaluation state is first made from it.
      new LlamaGrammarEvaluationState({ model: this.#model, grammar });
      return grammar;
    } catch (error) {
      throw new GrammarError(error);
    }
  }
}
