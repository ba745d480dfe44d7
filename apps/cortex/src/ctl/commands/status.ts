import { type CtlContext, printJson } from "../context.js";
import { formatModels, formatStatus, modelRows } from "../tables.js";

/** `cortexctl status`: nodes, GPUs and resident models, as cortex's snapshot has them. */
export const statusCommand = async (context: CtlContext): Promise<void> => {
  const snapshot = await context.client.fleet();
  if (context.json) printJson(context, snapshot);
  else context.print(formatStatus(snapshot, context.now()));
};

/** `cortexctl models`: the catalogue and everything resident, with status and locations. */
export const modelsCommand = async (context: CtlContext): Promise<void> => {
  const [snapshot, catalogue] = await Promise.all([
    context.client.fleet(),
    context.client.catalogue(),
  ]);
  const rows = modelRows(snapshot, catalogue);
  if (context.json) printJson(context, rows);
  else context.print(formatModels(rows));
};
