// The request bodies of the body attack (issue 13), built once as one Buffer each and sent as
// many times as the attack needs: the load generator's own memory stays at one body per kind.

const ascii = (text: string): Buffer => Buffer.from(text, "latin1");

/** `{"model":"<model>","x":[[[…]]]}`: valid JSON nested `levels` arrays deep (plus the object). */
export const deepBody = (model: string, levels: number): Buffer => {
  const head = ascii(`{"model":${JSON.stringify(model)},"x":`);
  const tail = ascii("}");
  const body = Buffer.allocUnsafe(head.length + 2 * levels + tail.length);
  head.copy(body, 0);
  body.fill(0x5b, head.length, head.length + levels);
  body.fill(0x5d, head.length + levels, head.length + 2 * levels);
  tail.copy(body, head.length + 2 * levels);
  return body;
};

/** A plain chat request of exactly `bytes` bytes: one user message of `a`s fills the rest. */
export const plainBody = (model: string, bytes: number): Buffer => {
  const head = ascii(`{"model":${JSON.stringify(model)},"messages":[{"role":"user","content":"`);
  const tail = ascii(`"}],"max_tokens":1}`);
  const filler = bytes - head.length - tail.length;
  if (filler < 0) throw new Error(`a plain body needs at least ${head.length + tail.length} bytes`);
  const body = Buffer.allocUnsafe(bytes);
  head.copy(body, 0);
  body.fill(0x61, head.length, head.length + filler);
  tail.copy(body, head.length + filler);
  return body;
};
