import {
  type ChatModelFunctions,
  type ChatWrapper,
  type ChatWrapperGenerateContextStateOptions,
  type ChatWrapperGeneratedContextState,
  LlamaText,
  SpecialToken,
} from "node-llama-cpp";

// The model's chat wrapper (its template: how a history becomes a prompt, how it calls
// functions), adjusted for one generation: tools documented in the wrapper's own words, the
// end of a grammar-held answer left to the grammar, and a call's opening written for the model.
// node-llama-cpp's own function calling is not used to generate calls: its argument grammars
// write integers such as 1e999 (which parse to Infinity) and then throw on them.

export interface PromptShape {
  /** Functions the wrapper documents to the model; none when absent. */
  readonly functions?: ChatModelFunctions | undefined;
  /**
   * The grammar decides where the answer ends: the template's text stop triggers (a plain-text
   * template ends a turn at a newline, which JSON may contain) no longer stop it.
   */
  readonly grammarEnds?: boolean;
  /** Text the answer starts with, written before the model generates (a call's opening). */
  readonly inject?: LlamaText;
}

const onlySpecialTokens = (trigger: LlamaText): boolean =>
  trigger.values.every((value) => value instanceof SpecialToken);

const shapeState = (
  state: ChatWrapperGeneratedContextState,
  shape: PromptShape,
): ChatWrapperGeneratedContextState => {
  const stopGenerationTriggers = shape.grammarEnds
    ? state.stopGenerationTriggers.filter(onlySpecialTokens)
    : state.stopGenerationTriggers;
  if (!shape.inject) return { ...state, stopGenerationTriggers };
  // The answer starts with the injected text, whatever the template would have opened with.
  return {
    contextText: state.contextText,
    stopGenerationTriggers,
    noPrefixTrigger: { type: "response", inject: shape.inject },
    detectFunctionCalls: false,
  };
};

/** `inner` with its prompts shaped; every other member is the wrapper's own. */
export const shapedWrapper = (inner: ChatWrapper, shape: PromptShape): ChatWrapper =>
  new Proxy(inner, {
    get(target, property) {
      if (property === "generateContextState")
        return (options: ChatWrapperGenerateContextStateOptions) =>
          shapeState(
            target.generateContextState({
              ...options,
              availableFunctions: shape.functions ?? options.availableFunctions,
              documentFunctionParams: true,
            }),
            shape,
          );
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });

const withName = (text: string | LlamaText, name: string): LlamaText =>
  LlamaText(text).mapValues((value) =>
    typeof value === "string" ? value.replaceAll("{{functionName}}", name) : value,
  );

/** The text that opens a function call in the wrapper's syntax. */
export const callOpening = (wrapper: ChatWrapper): LlamaText => {
  const { call, parallelism } = wrapper.settings.functions;
  return LlamaText([parallelism?.call.sectionPrefix ?? "", call.prefix]);
};

/** A call up to its arguments: the opening, the name, and what comes before the arguments. */
export const callUpToArguments = (wrapper: ChatWrapper, name: string): LlamaText =>
  LlamaText([
    callOpening(wrapper),
    name,
    withName(wrapper.settings.functions.call.paramsPrefix, name),
  ]);

/** Texts that, written by the model, start a function call (as node-llama-cpp detects them). */
export const callStarts = (wrapper: ChatWrapper): LlamaText[] => {
  const { call, parallelism } = wrapper.settings.functions;
  const sections = parallelism
    ? [parallelism.call.sectionPrefix, ...(parallelism.call.sectionPrefixAlternateMatches ?? [])]
    : [""];
  const prefixes = [call.prefix, ...(call.prefixAlternateMatches ?? [])];
  return sections.flatMap((section) => prefixes.map((prefix) => LlamaText([section, prefix])));
};
