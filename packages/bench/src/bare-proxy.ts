import { Agent, createServer, request } from "node:http";

// The floor a proxy hop is measured against (issue 21): `node bare-proxy.js <upstream port>`
// listens on a free loopback port, pipes every request to 127.0.0.1:<upstream port> through a
// keep-alive agent and pipes the answer back, doing nothing else. It prints one JSON line with
// its url once it listens.

const upstreamPort = Number(process.argv[2]);
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0 || upstreamPort > 65_535) {
  process.stderr.write("bare-proxy: usage: bare-proxy.js <upstream port>\n");
  process.exit(2);
}

const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

const server = createServer((req, res) => {
  const upstream = request(
    {
      host: "127.0.0.1",
      port: upstreamPort,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", () => res.destroy());
  res.on("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.pipe(upstream);
});
server.keepAliveTimeout = 65_000;
// A clean exit on the bench's SIGTERM, so a --cpu-prof profile gets written.
process.on("SIGTERM", () => process.exit(0));
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
});
