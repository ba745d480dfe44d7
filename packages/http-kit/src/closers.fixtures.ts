import type { Server } from "node:http";

// What an integration test started and must close, shared by every *.int.test.ts here: each file
// runs `afterEach(closeAll)`.

/** What each test started. */
export const closers: (() => Promise<void> | void)[] = [];

/** Closes what the last test started, newest first. */
export const closeAll = async (): Promise<void> => {
  for (const close of closers.splice(0).reverse()) await close();
};

/** Closes `server`, cutting its connections first (a keep-alive one would hold close open). */
export const closeServer = (server: Server) => (): Promise<void> => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
};
