import { once } from "node:events";
import { mkdir, open, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { FAKE_HARNESS_ENTRY, waitFor } from "@cortex/testkit";
import { ADMIN_TOKEN, fleetOf, NEURON_TOKEN, startCortex } from "./stack.js";
import { type AppProcess, benchWorkspace, MiB, NEURON_CLI, startApp } from "./support.js";

// The locality benchmark's fleet: a mock file server on loopback, two real neurons running the
// fake harness (it ignores the weights, so only the download differs), one of them holding the
// file already, and the built cortex in front.

export const MODEL = "weights";
/** Named so that, without locality, cortex's order (free memory, then name) picks the other. */
export const HOLDER = "gpu-b";
export const OTHER = "gpu-a";
const FILE_PATH = "/weights/model.bin";

/** Serves `size` zero bytes at FILE_PATH with `Range: bytes=N-` support; counts what it sent. */
export interface FileServer {
  readonly url: string;
  /** Body bytes sent so far, over every request. */
  readonly sent: () => number;
  readonly close: () => Promise<void>;
}

export const startFileServer = async (size: number): Promise<FileServer> => {
  const zeros = Buffer.alloc(MiB);
  let sent = 0;
  const server: Server = createServer((req, res) => {
    if (req.url !== FILE_PATH || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    if (start >= size && range) {
      res.writeHead(416, { "content-range": `bytes */${size}` }).end();
      return;
    }
    res.writeHead(range ? 206 : 200, {
      "content-type": "application/octet-stream",
      "content-length": size - start,
      ...(range ? { "content-range": `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    async function* body() {
      for (let left = size - start; left > 0; left -= zeros.length) {
        const chunk = left >= zeros.length ? zeros : zeros.subarray(0, left);
        sent += chunk.length;
        yield chunk;
      }
    }
    Readable.from(body()).pipe(res);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}${FILE_PATH}`,
    sent: () => sent,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
};

/** Where a neuron stores a download of `url` (apps/neuron parse-source.ts: host, then path). */
export const downloadPath = (modelsDir: string, url: string): string => {
  const parsed = new URL(url);
  return join(
    modelsDir,
    "downloads",
    parsed.host.replace(/[^A-Za-z0-9._-]/g, "_"),
    ...parsed.pathname.split("/").filter(Boolean),
  );
};

/** A complete file of `size` bytes that takes no disk space (sparse): the holder's copy. */
const writeSparse = async (path: string, size: number): Promise<void> => {
  await mkdir(dirname(path), { recursive: true });
  const file = await open(path, "w");
  try {
    await file.truncate(size);
  } finally {
    await file.close();
  }
};

export interface LocalityFleet {
  readonly dir: string;
  readonly cortex: AppProcess;
  readonly files: FileServer;
  readonly modelsDirOf: (node: string) => string;
  readonly stop: () => Promise<void>;
}

/** The file server, two neurons (only HOLDER holds the file), cortex; ready when cortex sees it. */
export const startLocalityFleet = async (size: number): Promise<LocalityFleet> => {
  const { dir, children, stop: stopWorkspace } = await benchWorkspace("cortex-bench-locality-");
  const files = await startFileServer(size);
  const stop = async () => {
    await stopWorkspace();
    await files.close();
  };
  try {
    const behaviour = join(dir, "behaviour.json");
    await writeFile(behaviour, JSON.stringify({}));
    const modelsDirOf = (node: string) => join(dir, node, "models");
    await writeSparse(downloadPath(modelsDirOf(HOLDER), files.url), size);
    const neurons: { name: string; url: string }[] = [];
    for (const name of [OTHER, HOLDER]) {
      await mkdir(modelsDirOf(name), { recursive: true });
      const app = await startApp({
        cli: NEURON_CLI,
        dir,
        file: `${name}.yaml`,
        config: {
          name,
          token: NEURON_TOKEN,
          models_dir: modelsDirOf(name),
          state_dir: join(dir, name, "state"),
          stop_grace_ms: 2000,
          devices: [{ name: "bench GPU", vram_total_mb: 24_000 }],
          harnesses: {
            // The model file is only downloaded: the harness runs a fixed behaviour.
            fake: {
              command: [
                process.execPath,
                FAKE_HARNESS_ENTRY,
                ...["--model", behaviour, "--port", "{port}", "--alias", "{model_id}"],
              ],
            },
          },
        },
        env: { NEURON_LOG_LEVEL: "info" },
      });
      children.push(app);
      neurons.push({ name, url: app.url });
    }
    const cortex = await startCortex(
      dir,
      [{ id: MODEL, harness: "fake", source: files.url, vram_mb: 1000, idle_ttl_s: 0 }],
      {
        poll_interval_ms: 500,
        discovery_interval_ms: 500,
        api_keys: ["sk-bench"],
        neurons: neurons.map((neuron) => ({ ...neuron, token: NEURON_TOKEN })),
      },
    );
    children.push(cortex);
    await waitFor("cortex to see the holder's file", async () => {
      const fleet = await fleetOf(cortex.url);
      const holder = fleet.nodes.find((node) => node.name === HOLDER);
      return (
        fleet.nodes.every((node) => node.healthy) &&
        (holder?.sources?.files.some((file) => file.size_bytes === size) ?? false)
      );
    });
    return { dir, cortex, files, modelsDirOf, stop };
  } catch (error) {
    await stop();
    throw error;
  }
};

const admin = (cortexUrl: string, path: string, body: unknown) =>
  fetch(`${cortexUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** A cold load through cortex's admin API (on `node`, or where cortex places it). */
export const coldLoad = async (
  cortexUrl: string,
  node: string | undefined,
): Promise<{ node: string; loadMs: number }> => {
  const res = await admin(cortexUrl, "/api/models/load", {
    model: MODEL,
    ...(node === undefined ? {} : { node }),
  });
  const answer = (await res.json()) as {
    node?: string;
    load_ms?: number;
    already_loaded?: boolean;
  };
  if (res.status !== 200 || answer.already_loaded !== false)
    throw new Error(`cold load on ${node ?? "any node"}: ${res.status} ${JSON.stringify(answer)}`);
  return { node: answer.node ?? "", loadMs: answer.load_ms ?? Number.NaN };
};

/** Unloads the model everywhere and waits until cortex's snapshot has it nowhere. */
export const unloadEverywhere = async (cortexUrl: string): Promise<void> => {
  const res = await admin(cortexUrl, "/api/models/unload", { model: MODEL });
  if (res.status !== 200) throw new Error(`unload: ${res.status} ${await res.text()}`);
  await waitFor("the model unloaded in cortex's snapshot", async () => {
    const fleet = await fleetOf(cortexUrl);
    return fleet.nodes.every((node) =>
      node.models.every((model) => model.id !== MODEL || model.status === "unloaded"),
    );
  });
};
