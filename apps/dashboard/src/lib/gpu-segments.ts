import type { Device, ModelStatus, NeuronModel } from "@cortex/protocol";

// One GPU's memory as the bar shows it: each resident model's share, what the GPU reports as
// used beyond those (other processes, driver overhead), and what is free. Shares are counted the
// way routing counts them (docs/contract.md, "Free memory"): a model on n devices holds
// vram_mb / n on each, from the moment its load starts.

const RESIDENT: ReadonlySet<ModelStatus> = new Set(["loading", "loaded", "recovering"]);

export type GpuSegment =
  | {
      readonly kind: "model";
      readonly model: string;
      readonly status: ModelStatus;
      readonly mb: number;
    }
  | { readonly kind: "other"; readonly mb: number }
  | { readonly kind: "free"; readonly mb: number };

export interface GpuUsage {
  readonly segments: readonly GpuSegment[];
  readonly totalMb: number;
  /** The models' shares plus other use. */
  readonly usedMb: number;
  /** More is promised to models than the GPU has (a static device list, say). */
  readonly overcommitted: boolean;
}

export const gpuUsage = (device: Device, models: readonly NeuronModel[]): GpuUsage => {
  const shares: GpuSegment[] = models
    .filter((model) => RESIDENT.has(model.status) && model.devices.includes(device.index))
    .map((model) => ({
      kind: "model" as const,
      model: model.id,
      status: model.status,
      mb: model.vram_mb / model.devices.length,
    }))
    .sort((a, b) => b.mb - a.mb || a.model.localeCompare(b.model));
  const total = device.vram_total_mb;
  const modelMb = shares.reduce((sum, segment) => sum + segment.mb, 0);
  const reportedUsed = Math.max(0, total - Math.min(device.vram_free_mb, total));
  const other = Math.max(0, reportedUsed - modelMb);
  const free = Math.max(0, total - modelMb - other);
  return {
    segments: [
      ...shares,
      ...(other > 0 ? [{ kind: "other" as const, mb: other }] : []),
      { kind: "free" as const, mb: free },
    ],
    totalMb: total,
    usedMb: modelMb + other,
    overcommitted: modelMb + other > total,
  };
};

/** Each segment's width in percent of the bar; an overcommitted GPU is scaled to fit. */
export const segmentWidths = (usage: GpuUsage): number[] => {
  const sum = usage.segments.reduce((acc, segment) => acc + segment.mb, 0);
  const scale = Math.max(sum, usage.totalMb);
  return usage.segments.map((segment) => (scale === 0 ? 0 : (segment.mb / scale) * 100));
};
