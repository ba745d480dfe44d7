import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelResponse } from "node-llama-cpp";
import type { ChatTurn } from "./engine.js";

// Turns as node-llama-cpp's chat history holds them. A model's turn there is one item: its
// text, its function calls each with its result, and what it wrote after the results. So an
// assistant turn with tool calls, the tool turns answering them and the assistant turn after
// those become one model item, which the chat wrapper renders in the model's own syntax.

/** A tool's answer as the model will read it: JSON when it parses, else the text. */
const resultOf = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

/** The answers in the tool turns right after `at`, by call id. */
const answersAfter = (turns: readonly ChatTurn[], at: number): Map<string, string> => {
  const answers = new Map<string, string>();
  for (let index = at + 1; turns[index]?.role === "tool"; index += 1) {
    const turn = turns[index];
    if (turn?.toolCallId !== undefined) answers.set(turn.toolCallId, turn.text);
  }
  return answers;
};

/**
 * The history LlamaChat generates from. It ends with a model item (empty for a new answer),
 * which generation continues: after tool results, the model goes on with its own turn.
 */
export const toHistory = (turns: readonly ChatTurn[]): ChatHistoryItem[] => {
  const history: ChatHistoryItem[] = [];
  // The model item a following assistant turn continues (after its calls were answered).
  let open: ChatModelResponse | undefined;
  turns.forEach((turn, index) => {
    if (turn.role === "system") history.push({ type: "system", text: turn.text });
    if (turn.role === "user") history.push({ type: "user", text: turn.text });
    if (turn.role !== "assistant") {
      // Tool turns were read with their calls; one without a call reads as the user's words.
      if (turn.role === "tool" && !open) history.push({ type: "user", text: turn.text });
      if (turn.role !== "tool") open = undefined;
      return;
    }
    const item: ChatModelResponse = open ?? { type: "model", response: [] };
    if (!open) history.push(item);
    if (turn.text) item.response.push(turn.text);
    const calls = turn.toolCalls ?? [];
    const answers = answersAfter(turns, index);
    calls.forEach((call, at) => {
      const functionCall: ChatModelFunctionCall = {
        type: "functionCall",
        name: call.name,
        params: call.arguments,
        result: resultOf(answers.get(call.id) ?? ""),
        ...(at === 0 ? { startsNewChunk: true } : {}),
      };
      item.response.push(functionCall);
    });
    open = calls.length > 0 ? item : undefined;
  });
  // generateResponse continues the last model turn, so an answer needs an empty one to fill.
  if (history.at(-1)?.type !== "model") history.push({ type: "model", response: [] });
  return history;
};
