// A colour per model, the same wherever the model appears (GPU bars, charts, legends). Each id
// hashes to a palette slot, so a model keeps its colour across reloads; ids that collide move to
// the next free slot, in sorted order, so two models on one page never share a colour while
// there are fewer of them than colours. The palette reads on light and dark backgrounds.

const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#b07aa1",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#9c755f",
  "#ff9da7",
  "#6b8e23",
  "#8c6bb1",
  "#3f9fd0",
] as const;

/** FNV-1a over the id. */
const hash = (text: string): number => {
  let value = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    value ^= text.charCodeAt(i);
    value = Math.imul(value, 0x01000193) >>> 0;
  }
  return value;
};

const hashed = (model: string): string => PALETTE[hash(model) % PALETTE.length] ?? PALETTE[0];

export type ModelColors = (model: string) => string;

export const modelColors = (ids: Iterable<string>): ModelColors => {
  const taken = new Set<number>();
  const assigned = new Map<string, string>();
  for (const id of [...new Set(ids)].sort((a, b) => a.localeCompare(b))) {
    let slot = hash(id) % PALETTE.length;
    for (let tries = 0; taken.has(slot) && tries < PALETTE.length; tries += 1)
      slot = (slot + 1) % PALETTE.length;
    taken.add(slot);
    assigned.set(id, PALETTE[slot] ?? PALETTE[0]);
  }
  return (model) => assigned.get(model) ?? hashed(model);
};

/** Text colour with enough contrast on `background` (a #rrggbb colour). */
export const textOn = (background: string): string => {
  const [r = 0, g = 0, b = 0] = [1, 3, 5]
    .map((at) => Number.parseInt(background.slice(at, at + 2), 16) / 255)
    .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return luminance > 0.35 ? "#111" : "#fff";
};
