import { once } from "node:events";
import { createServer } from "node:net";

/** A loopback port free right now. The harness binds it moments later; a clash shows as an early exit. */
export const freeLoopbackPort = async (): Promise<number> => {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
};

/**
 * One readiness or liveness probe: a 2xx answer counts. Without a `signal` it gives up after a
 * second; a liveness probe brings its own, which its timer aborts (supervisor/liveness.ts).
 */
export const probeReady = async (url: string, signal?: AbortSignal): Promise<boolean> => {
  try {
    const res = await fetch(url, { signal: signal ?? AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
};
