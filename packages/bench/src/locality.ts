import { rm, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { coldLoad, HOLDER, OTHER, startLocalityFleet, unloadEverywhere } from "./locality-fleet.js";
import { type BenchResult, MiB, now, print, round, spread, table, writeReport } from "./support.js";

export interface LocalityOptions {
  /** Size of the model file the mock server serves. */
  readonly fileMiB: number;
  /** Cold loads on each node. */
  readonly rounds: number;
}
export const LOCALITY_FULL: LocalityOptions = { fileMiB: 1024, rounds: 3 };
export const LOCALITY_SMOKE: LocalityOptions = { fileMiB: 16, rounds: 1 };

/** Room the downloading node needs besides the file: logs, state, the harness. */
const MARGIN_MIB = 256;
/** A cold load that downloads the file must take at least this many times the one that does not. */
const MIN_RATIO = 2;

interface Sample {
  readonly node: string;
  readonly placed_by: "cortex" | "operator";
  readonly wall_ms: number;
  readonly load_ms: number;
  readonly downloaded_bytes: number;
}

/**
 * Issue 18 "weights where they already are": a cold load of a model whose weights one node
 * already holds, placed by cortex (no node named), against cold loads on the node that must
 * download them from a mock file server on loopback. Skips, saying why, when the disk is short.
 */
export const runLocality = async (options: LocalityOptions): Promise<BenchResult> => {
  const size = options.fileMiB * MiB;
  const needMiB = options.fileMiB + MARGIN_MIB;
  const disk = await statfs(tmpdir());
  const freeMiB = Math.floor((disk.bavail * disk.bsize) / MiB);
  if (freeMiB < needMiB) {
    const reason = `skipped: ${freeMiB} MiB free under ${tmpdir()}, the download needs ${needMiB} MiB`;
    writeReport("locality", {
      benchmark: "locality",
      date: new Date().toISOString(),
      options,
      skipped: reason,
      samples: [],
      ratio: null,
    });
    print("Weights where they already are", reason);
    return {
      name: "locality",
      title: "Weights where they already are",
      markdown: reason,
      budgets: [],
    };
  }

  const fleet = await startLocalityFleet(size);
  try {
    const samples: Sample[] = [];
    const measure = async (node: string | undefined): Promise<Sample> => {
      const before = fleet.files.sent();
      const start = now();
      const answer = await coldLoad(fleet.cortex.url, node);
      const sample: Sample = {
        node: answer.node,
        placed_by: node === undefined ? "cortex" : "operator",
        wall_ms: round(now() - start),
        load_ms: round(answer.loadMs),
        downloaded_bytes: fleet.files.sent() - before,
      };
      samples.push(sample);
      await unloadEverywhere(fleet.cortex.url);
      return sample;
    };
    for (let i = 0; i < options.rounds; i += 1) {
      // The first holder load is cortex's choice: no node named, both have room, the other one
      // comes first by name. Later ones name the holder: the other node has a copy by then.
      await measure(i === 0 ? undefined : HOLDER);
      await measure(OTHER);
      // The next round downloads again (the neuron looks at its disk before every download).
      await rm(join(fleet.modelsDirOf(OTHER), "downloads"), { recursive: true, force: true });
    }
    const held = spread(samples.filter((s) => s.node === HOLDER).map((s) => s.wall_ms));
    const fetched = spread(samples.filter((s) => s.node === OTHER).map((s) => s.wall_ms));
    const ratio = round(fetched.p50 / held.p50, 2);
    const choice = samples[0] as Sample;
    const report = {
      benchmark: "locality",
      date: new Date().toISOString(),
      options,
      file_bytes: size,
      samples,
      held_ms: held,
      downloaded_ms: fetched,
      ratio,
      cortex_choice: choice,
    };
    writeReport("locality", report);
    const t = table(
      ["node", "holds the file", "placed by", "wall ms", "load_ms", "downloaded MiB"],
      samples.map((s) => [
        s.node,
        s.node === HOLDER ? "yes" : "no",
        s.placed_by,
        s.wall_ms,
        s.load_ms,
        round(s.downloaded_bytes / MiB, 1),
      ]),
    );
    print(
      "Weights where they already are",
      `${t.text}\nratio (p50 downloading / p50 held): ${ratio}×`,
    );
    return {
      name: "locality",
      title: "Weights where they already are",
      markdown: [
        `Two real neurons (static 24000 MB GPU each, the fake harness as a template harness that ignores the weights, so only the download differs) behind cortex; one catalogue entry whose \`source\` is a ${options.fileMiB} MiB file on a mock file server on loopback (node:http, zeros, Range support). ${HOLDER} holds the file already (a sparse copy where the neuron stores that download); ${OTHER} does not, and comes first in cortex's order without locality (equal room, then name). ${options.rounds} round(s): a cold load on the holder (the first one placed by cortex with no node named, the later ones on the holder by name, since ${OTHER} holds a copy after its first download) and a cold load on ${OTHER} (\`POST /api/models/load {node}\`, its copy deleted after each), each unloaded after. Wall ms: the admin load call as the client saw it; load_ms: cortex's answer; downloaded: bytes the mock server sent during the load.`,
        "",
        t.markdown,
        "",
        `Ratio (p50 of the loads that downloaded over p50 of those that did not): **${ratio}×**.`,
      ].join("\n"),
      budgets: [
        {
          budget:
            "locality: with no node named, the cold load goes to the node holding the weights and downloads nothing",
          measured: `${choice.node}, ${round(choice.downloaded_bytes / MiB, 1)} MiB downloaded`,
          pass: choice.node === HOLDER && choice.downloaded_bytes === 0,
        },
        {
          budget: `locality: a cold load that downloads ${options.fileMiB} MiB takes ≥ ${MIN_RATIO}× one where the weights are`,
          measured: `${ratio}× (p50 ${fetched.p50} vs ${held.p50} ms)`,
          pass: ratio >= MIN_RATIO,
        },
      ],
    };
  } finally {
    await fleet.stop();
  }
};
