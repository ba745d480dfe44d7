import type { ApiNodeDrainAnswer } from "@cortex/protocol";
import { type CtlContext, printJson } from "../context.js";

/** What a drain or resume answer says, in a line. */
export const formatDrainAnswer = (answer: ApiNodeDrainAnswer): string => {
  switch (answer.drain) {
    case "draining":
      return `${answer.node} is draining: no new requests; its models unload once idle (cortexctl status shows when it is drained)`;
    case "drained":
      return `${answer.node} is drained: nothing resident, no requests (cortexctl resume ${answer.node} puts it back)`;
    case null:
      return `${answer.node} is in service`;
  }
};

/** `cortexctl drain NAME`: takes the node out for maintenance; answers at once. */
export const drainCommand = async (context: CtlContext, node: string): Promise<void> => {
  const answer = await context.client.drain(node);
  if (context.json) printJson(context, answer);
  else context.print(formatDrainAnswer(answer));
};

/** `cortexctl resume NAME`: puts a drained (or draining) node back in service. */
export const resumeCommand = async (context: CtlContext, node: string): Promise<void> => {
  const answer = await context.client.resume(node);
  if (context.json) printJson(context, answer);
  else context.print(formatDrainAnswer(answer));
};
