import { type CtlContext, printJson } from "../context.js";

/** `cortexctl logs <model> [--node N]`: the harness output, as the neuron keeps it. */
export const logsCommand = async (
  context: CtlContext,
  model: string,
  options: { node?: string },
): Promise<void> => {
  const text = await context.client.logs(model, options.node);
  if (context.json) printJson(context, { model, node: options.node ?? null, logs: text });
  else context.print(text.endsWith("\n") ? text.slice(0, -1) : text);
};
