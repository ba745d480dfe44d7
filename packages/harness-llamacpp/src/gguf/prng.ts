/**
 * A small seeded generator (mulberry32): the same seed gives the same numbers on every machine
 * and Node version, which is what "same seed, same bytes" needs. Not for anything secret.
 */
export class SeededRandom {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** `count` floats spread evenly in [-scale, scale]. */
  uniform(count: number, scale: number): Float32Array {
    const values = new Float32Array(count);
    for (let index = 0; index < count; index++) values[index] = (this.next() * 2 - 1) * scale;
    return values;
  }
}
