import { connect, createServer, type Socket } from "node:net";

// A TCP relay on loopback for tests that need a network partition without root: cortex talks
// to a neuron through it, and `partition()` drops every byte both ways while every connection
// stays open and new ones are still accepted, as when a cable is pulled between two hosts that
// keep their sockets (nothing is refused, nothing is reset: requests and polls just hang).

export interface Relay {
  /** `http://127.0.0.1:<port>`: the neuron's address through the relay. */
  readonly url: string;
  /** From now on, nothing passes either way. */
  partition(): void;
  /** Bytes pass again; connections that lived through the partition are closed (their streams
   * lost bytes), as the timeouts on both hosts would. */
  heal(): void;
  close(): Promise<void>;
}

export const startRelay = async (targetPort: number): Promise<Relay> => {
  let dropping = false;
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((inbound) => {
    const outbound = connect(targetPort, "127.0.0.1");
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    for (const [from, to] of [
      [inbound, outbound],
      [outbound, inbound],
    ] as const) {
      from.on("data", (chunk: Buffer) => {
        if (!dropping) to.write(chunk);
      });
      from.on("error", end);
      from.on("close", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const cut = () => {
    for (const [inbound, outbound] of pairs) {
      inbound.destroy();
      outbound.destroy();
    }
    pairs.clear();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    partition: () => {
      dropping = true;
    },
    heal: () => {
      dropping = false;
      cut();
    },
    close: async () => {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
