// Text that quotes what a client sent or a program printed is capped before it is stored or
// answered: a 1 MB source name once became a 1 MB error, 240 times over.

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/**
 * `text` when it fits in `max` characters; otherwise its start and its end around a marker
 * saying how much was cut, `max` characters at most. Both ends are kept because a message
 * starts with what failed and ends with why (or with a harness's last output).
 */
export const capText = (text: string, max: number): string => {
  if (text.length <= max) return text;
  const markerFor = (cut: number) => ` […${cut} characters cut…] `;
  // The marker's length with the largest count it may show, so the result never exceeds max.
  const budget = Math.max(0, max - markerFor(text.length).length);
  let headEnd = Math.ceil(budget / 2);
  let tailStart = text.length - (budget - headEnd);
  // Never split a surrogate pair: half a character would end up as U+FFFD or a lone escape.
  if (headEnd > 0 && isHighSurrogate(text.charCodeAt(headEnd - 1))) headEnd -= 1;
  if (tailStart < text.length && isLowSurrogate(text.charCodeAt(tailStart))) tailStart += 1;
  return `${text.slice(0, headEnd)}${markerFor(tailStart - headEnd)}${text.slice(tailStart)}`;
};
