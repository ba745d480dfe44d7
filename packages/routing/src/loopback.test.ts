import { describe, expect, it } from "vitest";
import { isLoopbackHost, rewriteLoopback } from "./loopback.js";

describe("rewriteLoopback", () => {
  it.each([
    ["http://localhost:13131", "http://gpu-a.lan:13131", "http://gpu-a.lan:13131"],
    ["http://127.0.0.1:13131/", "http://gpu-a.lan:13131", "http://gpu-a.lan:13131"],
    ["http://0.0.0.0:8080/v1/", "http://gpu-a.lan:13131", "http://gpu-a.lan:8080/v1"],
    ["http://[::1]:13131", "http://gpu-a.lan:13131", "http://gpu-a.lan:13131"],
    ["http://[::1]:9000/base//", "http://10.0.0.5:13131", "http://10.0.0.5:9000/base"],
    ["http://127.8.9.10:5000", "http://gpu-a.lan", "http://gpu-a.lan:5000"],
    ["http://LOCALHOST:1", "http://gpu-a.lan", "http://gpu-a.lan:1"],
    ["http://[::ffff:127.0.0.1]:7000", "http://gpu-a.lan", "http://gpu-a.lan:7000"],
    ["http://localhost:13131", "http://[fd00::5]:13131", "http://[fd00::5]:13131"],
    ["https://localhost/v1?x=1", "http://gpu-b:1", "https://gpu-b/v1?x=1"],
    ["http://gpu-c.lan:13131/", "http://gpu-a.lan:13131", "http://gpu-c.lan:13131"],
    ["http://10.1.2.3:13131", "http://gpu-a.lan:13131", "http://10.1.2.3:13131"],
    ["http://localhost.example.com:1", "http://gpu-a.lan", "http://localhost.example.com:1"],
    ["http://128.0.0.1:1", "http://gpu-a.lan", "http://128.0.0.1:1"],
  ])("%s via %s → %s", (endpoint, neuron, expected) => {
    expect(rewriteLoopback(endpoint, neuron)).toBe(expected);
  });

  it.each([
    ["not a url", "http://gpu-a.lan"],
    ["", "http://gpu-a.lan"],
    ["http://[::1:13131", "http://gpu-a.lan"],
    ["http://localhost:99999", "http://gpu-a.lan"],
    ["http://localhost:1", "gpu-a.lan"],
    ["mailto:ops@example.com", "http://gpu-a.lan"],
  ])("returns null without throwing for %j via %j", (endpoint, neuron) => {
    expect(rewriteLoopback(endpoint, neuron)).toBeNull();
  });

  it.each(["localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]", "[::]", "api.localhost"])(
    "%s is loopback",
    (host) => expect(isLoopbackHost(host)).toBe(true),
  );

  it.each(["gpu-a", "10.0.0.1", "[fd00::1]", "localhost.evil.com", "1270.0.0.1"])(
    "%s is not loopback",
    (host) => expect(isLoopbackHost(host)).toBe(false),
  );
});
