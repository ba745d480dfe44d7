import type { CatalogueReportModel } from "@cortex/protocol";
import { formatMb } from "./format.js";

// A catalogue model's GPU memory as the Models view shows it: the figure cortex places it by,
// what it knows of it (declared, estimated, observed), and a warning when the declared figure
// is more than 20 % off what the model was measured at. Pure over GET /api/catalogue's entry.

export interface MemoryFigures {
  /** What cortex places the model by: "6.5 GB", "CPU", or "estimating…" while unknown. */
  readonly effective: string;
  /** "declared 10 GB · estimated 9.6 GB · observed 20 GB"; unknown figures left out. */
  readonly known: string;
  /** Why the declared figure is flagged, or null when it is not. */
  readonly flag: string | null;
}

const percentOff = (declared: number, observed: number): number =>
  Math.round((Math.abs(declared - observed) / observed) * 100);

export const memoryFigures = (profile: CatalogueReportModel): MemoryFigures => {
  const { declared_mb, estimated_mb, observed_mb, effective_mb } = profile.vram;
  const known = [
    declared_mb === null ? null : `declared ${formatMb(declared_mb)}`,
    estimated_mb === null ? null : `estimated ${formatMb(estimated_mb)}`,
    observed_mb === null ? null : `observed ${formatMb(observed_mb)}`,
  ]
    .filter((part) => part !== null)
    .join(" · ");
  const flag =
    profile.vram_flag === "declared_off" && declared_mb !== null && observed_mb !== null
      ? `the declared ${formatMb(declared_mb)} is ${percentOff(declared_mb, observed_mb)} % ${
          declared_mb < observed_mb ? "below" : "above"
        } the ${formatMb(observed_mb)} observed: fix vram_mb in the catalogue`
      : null;
  const effective =
    profile.runs_on === "cpu"
      ? "CPU"
      : effective_mb === null
        ? "estimating…"
        : `${formatMb(effective_mb)}${profile.min_devices > 1 ? ` on ${profile.min_devices} GPUs` : ""}`;
  return { effective, known, flag };
};
