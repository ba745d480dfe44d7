import type { NeuronModel } from "@cortex/protocol";
import { reuse, sameModel } from "./answer-reuse.js";

// What a neuron's event stream tells cortex (live-events.ts reads it, the poller applies it),
// and the bookkeeping that keeps a poll answer from undoing newer news.

/** One change a neuron announced on its event stream, parsed and checked. */
export type LiveNews =
  | { readonly kind: "snapshot"; readonly models: readonly NeuronModel[] }
  | { readonly kind: "model"; readonly model: NeuronModel }
  | { readonly kind: "removed"; readonly id: string };

/**
 * The node's models once `news` is applied: the same array when nothing changed, and the
 * previous object of every model that did not change (consumers compare by reference).
 */
export const applyNews = (models: NeuronModel[], news: LiveNews): NeuronModel[] => {
  if (news.kind === "snapshot") return reuse(models, news.models.slice(), sameModel);
  const id = news.kind === "model" ? news.model.id : news.id;
  const index = models.findIndex((model) => model.id === id);
  if (news.kind === "removed") return index < 0 ? models : models.filter((_, i) => i !== index);
  if (index < 0) return [...models, news.model];
  const old = models[index] as NeuronModel;
  if (sameModel(old, news.model)) return models;
  const next = models.slice();
  next[index] = news.model;
  return next;
};

/**
 * Which models each node's news touched, numbered, so that a poll answer (which may have left
 * the neuron before that news) never replaces them: `mark` is read as `/models` leaves, `merge`
 * keeps what changed since, `settle` forgets once that poll is applied (a node has at most one
 * poll out at a time: the poller runs them in series).
 */
export class LiveMarks {
  readonly #seq = new Map<string, number>();
  /** Per node: model id → the number of the last news about it. */
  readonly #touched = new Map<string, Map<string, number>>();
  /** Per node: the number of the last snapshot (news about every model). */
  readonly #whole = new Map<string, number>();

  /** The node's news so far, as a number to compare with later. */
  mark(node: string): number {
    return this.#seq.get(node) ?? 0;
  }

  record(node: string, news: LiveNews): void {
    const seq = this.mark(node) + 1;
    this.#seq.set(node, seq);
    if (news.kind === "snapshot") {
      this.#whole.set(node, seq);
      return;
    }
    let touched = this.#touched.get(node);
    if (!touched) {
      touched = new Map();
      this.#touched.set(node, touched);
    }
    touched.set(news.kind === "model" ? news.model.id : news.id, seq);
  }

  /**
   * A `/models` answer sent at `mark`, with every model news touched since then taken from
   * `current` (the snapshot's list, which has that news) instead: present there or gone.
   */
  merge(node: string, mark: number, answer: NeuronModel[], current: NeuronModel[]): NeuronModel[] {
    if (this.mark(node) === mark) return answer;
    if ((this.#whole.get(node) ?? 0) > mark) return current.slice();
    const touched = this.#touched.get(node);
    const newer = (id: string) => (touched?.get(id) ?? 0) > mark;
    const live = new Map(current.map((model) => [model.id, model]));
    const merged: NeuronModel[] = [];
    for (const model of answer) {
      if (!newer(model.id)) merged.push(model);
      else {
        const kept = live.get(model.id);
        if (kept) merged.push(kept);
      }
    }
    const answered = new Set(answer.map((model) => model.id));
    for (const model of current) if (newer(model.id) && !answered.has(model.id)) merged.push(model);
    return merged;
  }

  /** The node's poll was applied: no answer is out that news could be newer than. */
  settle(node: string): void {
    this.#touched.delete(node);
    this.#whole.delete(node);
  }
}
