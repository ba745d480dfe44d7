import { Command, CommanderError } from "commander";
import { CortexClient } from "./client.js";
import { drainCommand, resumeCommand } from "./commands/drain.js";
import { eventsCommand } from "./commands/events.js";
import { loadCommand, unloadCommand } from "./commands/load.js";
import { logsCommand } from "./commands/logs.js";
import { nodesCommand, removeNodeCommand } from "./commands/nodes.js";
import { modelsCommand, statusCommand } from "./commands/status.js";
import type { CtlContext } from "./context.js";
import { CtlError } from "./ctl-error.js";

export const DEFAULT_URL = "http://127.0.0.1:31313";

export interface CtlEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WriteStream;
  /** Aborted on Ctrl-C: long-running commands (events --follow, load) end cleanly. */
  readonly stop: AbortSignal;
  readonly now: () => number;
}

interface GlobalOptions {
  readonly url: string;
  readonly token?: string;
  readonly json?: boolean;
}

/**
 * The cortexctl program. Usage errors from commander exit 2; every CtlError exits with its
 * code (1) and its message alone; anything else is a bug and keeps its stack.
 */
export const buildProgram = (environment: CtlEnvironment): Command => {
  const { env } = environment;
  const program = new Command("cortexctl")
    .description("Operate a cortex fleet through its admin API")
    .exitOverride()
    .configureHelp({ showGlobalOptions: true })
    .option("--url <url>", "cortex base URL (env: CORTEX_URL)", env.CORTEX_URL ?? DEFAULT_URL)
    .option("--token <token>", "admin token (default: $CORTEX_ADMIN_TOKEN)")
    .option("--json", "machine-readable JSON on stdout instead of tables");

  const contextOf = (command: Command): CtlContext => {
    const options = command.optsWithGlobals<GlobalOptions>();
    return {
      client: new CortexClient({
        url: options.url,
        token: options.token ?? env.CORTEX_ADMIN_TOKEN,
      }),
      json: options.json === true,
      print: (text) => environment.stdout.write(`${text}\n`),
      stderr: environment.stderr,
      now: environment.now,
    };
  };

  program
    .command("status")
    .description("nodes (health, drain, labels), GPUs (VRAM used/total) and resident models")
    .action((_options, command: Command) => statusCommand(contextOf(command)));

  program
    .command("models")
    .description("catalogue models and everything resident, with status and locations")
    .action((_options, command: Command) => modelsCommand(contextOf(command)));

  program
    .command("load")
    .description("load a model (through the catalogue, or on --node) and show its progress")
    .argument("<model>", "model id or alias")
    .option("--node <node>", "load it on this node")
    .action((model: string, options: { node?: string }, command: Command) =>
      loadCommand(contextOf(command), model, options, environment.stop),
    );

  program
    .command("unload")
    .description("unload a model from --node, or from every node")
    .argument("<model>", "model id or alias")
    .option("--node <node>", "only from this node")
    .option("--force", "even while requests run (they fail)")
    .action((model: string, options: { node?: string; force?: boolean }, command: Command) =>
      unloadCommand(contextOf(command), model, options),
    );

  program
    .command("drain")
    .description("take a node out for maintenance: no new requests, its models unload once idle")
    .argument("<node>", "node name")
    .action((node: string, _options, command: Command) => drainCommand(contextOf(command), node));

  program
    .command("resume")
    .description("put a drained node back in service")
    .argument("<node>", "node name")
    .action((node: string, _options, command: Command) => resumeCommand(contextOf(command), node));

  const nodes = program
    .command("nodes")
    .description("list the nodes: URL, origin (static or joined), health, drain, labels")
    .action((_options, command: Command) => nodesCommand(contextOf(command)));
  nodes
    .command("rm")
    .description("forget a joined node (static ones are removed from cortex.yaml)")
    .argument("<node>", "node name")
    .action((node: string, _options, command: Command) =>
      removeNodeCommand(contextOf(command), node),
    );

  program
    .command("events")
    .description("print fleet events: for --seconds (default 1), or until Ctrl-C with --follow")
    .option("-f, --follow", "keep printing until Ctrl-C")
    .option("--seconds <n>", "without --follow: listen this long", "1")
    .option("--since <when>", "replay buffered events since an ISO time or 30s/15m/2h ago")
    .action((options: { follow?: boolean; seconds?: string; since?: string }, command: Command) =>
      eventsCommand(contextOf(command), options, environment.stop),
    );

  program
    .command("logs")
    .description("the harness output of a model")
    .argument("<model>", "model id or alias")
    .option("--node <node>", "the node (needed when several have the model)")
    .action((model: string, options: { node?: string }, command: Command) =>
      logsCommand(contextOf(command), model, options),
    );

  return program;
};

/** Runs one command line; answers the exit code instead of exiting, so tests can call it. */
export const runCtl = async (argv: readonly string[], environment: CtlEnvironment) => {
  const program = buildProgram(environment);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the problem (or the help, or the version).
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof CtlError) {
      environment.stderr.write(`cortexctl: ${error.message}\n`);
      return error.exitCode;
    }
    environment.stderr.write(
      `cortexctl: unexpected error (a bug): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
};
