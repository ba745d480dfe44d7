import type { ServerResponse } from "node:http";

/**
 * Writes `text` and, when the response's buffer is full, waits until it drains or closes: a
 * fake stream then stops where a client that stopped reading stops it, as a real server would.
 */
export const writeAndWait = (res: ServerResponse, text: string): Promise<void> | undefined => {
  if (res.write(text)) return undefined;
  return new Promise<void>((resolve) => {
    const go = () => {
      res.off("drain", go);
      res.off("close", go);
      resolve();
    };
    res.on("drain", go);
    res.on("close", go);
  });
};

/** An SSE comment line of `bytes` bytes to put before each chunk, to make a stream heavy. */
export const paddingOf = (bytes: number | undefined): string =>
  bytes === undefined || bytes === 0 ? "" : `:${"x".repeat(bytes)}\n`;
