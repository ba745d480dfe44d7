import { type CtlContext, printJson } from "../context.js";
import { formatCatalogueProblems, formatModels, formatStatus, modelRows } from "../tables.js";

/** `cortexctl status`: nodes, GPUs and resident models, as cortex's snapshot has them. */
export const statusCommand = async (context: CtlContext): Promise<void> => {
  const snapshot = await context.client.fleet();
  if (context.json) printJson(context, snapshot);
  else context.print(formatStatus(snapshot, context.now()));
};

/**
 * `cortexctl models`: the catalogue and everything resident, with status, locations and GPU
 * memory (declared, estimated, observed, and the figure cortex places by), then the problems
 * cortex found with catalogue entries.
 */
export const modelsCommand = async (context: CtlContext): Promise<void> => {
  const [snapshot, catalogue] = await Promise.all([
    context.client.fleet(),
    context.client.catalogue(),
  ]);
  const rows = modelRows(snapshot, catalogue.models);
  if (context.json) printJson(context, rows);
  else
    context.print(
      [formatModels(rows), formatCatalogueProblems(catalogue.problems)]
        .filter((text) => text !== "")
        .join("\n\n"),
    );
};
