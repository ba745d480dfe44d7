import { describe, expect, it } from "vitest";
import {
  classifyHost,
  type HostClass,
  redirectAllowed,
  sourceAllowed,
  urlAllowed,
} from "./address-policy.js";

/** The hostname exactly as the WHATWG parser leaves it, which is what the policy sees. */
const hostOf = (url: string): string => new URL(url).hostname;

describe("classifyHost", () => {
  it.each<[string, HostClass]>([
    // Unspecified: "this host", never a place to connect to.
    ["http://0.0.0.0/", "unspecified"],
    ["http://0/", "unspecified"],
    ["http://0.1.2.3/", "unspecified"],
    ["http://0x0/", "unspecified"],
    ["http://[::]/", "unspecified"],
    ["http://[0:0:0:0:0:0:0:0]/", "unspecified"],
    ["http://[::ffff:0.0.0.0]/", "unspecified"],
    // Loopback, in every spelling the URL parser accepts.
    ["http://127.0.0.1/", "loopback"],
    ["http://127.255.255.254/", "loopback"],
    ["http://2130706433/", "loopback"],
    ["http://0x7f.1/", "loopback"],
    ["http://0177.0.0.1/", "loopback"],
    ["http://127.1/", "loopback"],
    ["http://127.0.0.1./", "loopback"],
    ["http://[::1]/", "loopback"],
    ["http://[0:0:0:0:0:0:0:1]/", "loopback"],
    ["http://[::ffff:127.0.0.1]/", "loopback"],
    ["http://[::ffff:7f00:1]/", "loopback"],
    ["http://[::ffff:0:127.0.0.1]/", "loopback"],
    ["http://[::127.0.0.1]/", "loopback"],
    ["http://[64:ff9b::127.0.0.1]/", "loopback"],
    ["http://localhost/", "loopback"],
    ["http://LOCALHOST./", "loopback"],
    ["http://api.localhost/", "loopback"],
    ["http://ip6-localhost/", "loopback"],
    // Private networks.
    ["http://10.0.0.1/", "private"],
    ["http://10.255.255.255/", "private"],
    ["http://172.16.0.1/", "private"],
    ["http://172.31.255.255/", "private"],
    ["http://192.168.1.1/", "private"],
    ["http://169.254.169.254/", "private"],
    ["http://100.64.0.1/", "private"],
    ["http://224.0.0.1/", "private"],
    ["http://255.255.255.255/", "private"],
    ["http://[fc00::1]/", "private"],
    ["http://[fd12:3456::1]/", "private"],
    ["http://[fe80::1]/", "private"],
    ["http://[febf::1]/", "private"],
    ["http://[ff02::1]/", "private"],
    ["http://[::ffff:10.1.2.3]/", "private"],
    ["http://[::ffff:192.168.0.1]/", "private"],
    ["http://[::ffff:a9fe:a9fe]/", "private"],
    // Public: addresses just outside the ranges, and names (see the DNS note in the module).
    ["http://172.15.255.255/", "public"],
    ["http://172.32.0.0/", "public"],
    ["http://192.169.0.1/", "public"],
    ["http://169.253.0.1/", "public"],
    ["http://100.128.0.1/", "public"],
    ["http://11.0.0.1/", "public"],
    ["http://126.255.255.255/", "public"],
    ["http://128.0.0.1/", "public"],
    ["http://8.8.8.8/", "public"],
    ["http://[2001:db8::1]/", "public"],
    ["http://[2606:4700::1111]/", "public"],
    ["http://[::ffff:8.8.8.8]/", "public"],
    ["http://[fec0::1]/", "private"],
    ["http://huggingface.co/", "public"],
    ["http://localhost.example.com/", "public"],
    ["http://127.0.0.1.nip.io/", "public"],
  ])("%s is %s", (url, expected) => {
    expect(classifyHost(hostOf(url))).toBe(expected);
  });

  it.each<[string, HostClass]>([
    ["::", "unspecified"],
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["fe80::1%eth0", "private"],
    ["::ffff:127.0.0.1", "loopback"],
    ["1:2:3:4:5:6:7:8:9", "public"],
    ["1::2::3", "public"],
    ["::ffff:300.0.0.1", "public"],
    ["", "public"],
  ])("the raw string %j is %s", (host, expected) => {
    expect(classifyHost(host)).toBe(expected);
  });
});

describe("the loopback class: where a source may use plain http", () => {
  it.each([
    ["localhost", true],
    ["127.0.0.1", true],
    ["127.255.0.9", true],
    ["[::1]", true],
    ["128.0.0.1", false],
    ["127.0.0.1.nip.io", false],
    ["example.com", false],
  ])("plain http may reach %s: %s (parse-source's loopback rule)", (host, loopback) => {
    expect(classifyHost(host) === "loopback").toBe(loopback);
  });
});

describe("sourceAllowed: what a download checks of its own source", () => {
  it.each([
    "https://huggingface.co/x.gguf",
    "http://127.0.0.1:9000/x.gguf",
    // An operator's plain-http mirror in hf_endpoint: parse-source's business, not refused here.
    "http://mirror.lan:8080/x.gguf",
  ])("lets %s through", (url) => {
    expect(sourceAllowed(new URL(url))).toEqual({ allowed: true });
  });

  it.each([
    "https://0.0.0.0/x.gguf",
    "https://0/x.gguf",
    "https://[::]/x.gguf",
    "https://[::ffff:0.0.0.0]/x.gguf",
  ])("refuses %s", (url) => {
    expect(sourceAllowed(new URL(url))).toMatchObject({
      allowed: false,
      reason: expect.stringMatching(/is not an address one can connect to/),
    });
  });
});

describe("urlAllowed: the rules of a source", () => {
  it.each([
    "https://huggingface.co/x.gguf",
    "https://10.0.0.5/x.gguf",
    "https://127.0.0.1/x.gguf",
    "http://127.0.0.1:9000/x.gguf",
    "http://localhost/x.gguf",
    "http://[::1]:8080/x.gguf",
  ])("allows %s", (url) => {
    expect(urlAllowed(new URL(url))).toEqual({ allowed: true });
  });

  it.each([
    ["https://0.0.0.0/x.gguf", /0\.0\.0\.0 is not an address/],
    ["https://[::]/x.gguf", /\[::\] is not an address/],
    ["http://0.0.0.0:8080/x.gguf", /not an address/],
    ["http://10.0.0.5/x.gguf", /plain http is allowed only to loopback/],
    ["http://example.com/x.gguf", /plain http is allowed only to loopback/],
    ["https://user:pw@example.com/x.gguf", /credentials/],
    ["https://user@example.com/x.gguf", /credentials/],
    ["http://u:p@127.0.0.1/x.gguf", /credentials/],
    ["file:///etc/passwd", /file: is not http\(s\)/],
    ["ftp://127.0.0.1/x.gguf", /ftp: is not http\(s\)/],
    ["data:text/plain,hello", /data: is not http\(s\)/],
  ])("refuses %s", (url, reason) => {
    const verdict = urlAllowed(new URL(url));
    expect(verdict.allowed).toBe(false);
    expect(verdict.allowed ? "" : verdict.reason).toMatch(reason);
  });
});

describe("redirectAllowed", () => {
  it.each([
    // Public https to public https (Hugging Face to its CDN), whatever the name.
    ["https://huggingface.co/a", "https://cdn-lfs.hf.co/b?X-Amz-Signature=s"],
    ["https://huggingface.co/a", "https://8.8.8.8/b"],
    // A loopback source (a local mirror, the tests' fakes) may stay on loopback, http or https.
    ["http://127.0.0.1:1/a", "http://127.0.0.1:2/b"],
    ["http://127.0.0.1:1/a", "http://localhost:2/b"],
    ["http://localhost/a", "http://[::1]/b"],
    ["http://127.0.0.1/a", "https://127.0.0.1/b"],
    // … and may go outward, to the private network or the internet.
    ["http://127.0.0.1/a", "https://10.0.0.1/b"],
    ["http://127.0.0.1/a", "https://huggingface.co/b"],
    // A private source (a LAN mirror) may stay private or go public.
    ["https://10.0.0.5/a", "https://10.0.0.6/b"],
    ["https://192.168.1.2/a", "https://[fd00::2]/b"],
    ["https://10.0.0.5/a", "https://huggingface.co/b"],
    // A loopback https source may stay on loopback https.
    ["https://127.0.0.1/a", "https://localhost/b"],
    // Within one origin nothing new is reached, even over plain http (an http mirror).
    ["http://mirror.lan:8080/resolve/a", "http://mirror.lan:8080/blobs/b"],
    ["http://10.0.0.5/a", "http://10.0.0.5/b?sig=1"],
  ])("%s → %s is followed", (from, to) => {
    expect(redirectAllowed(new URL(from), new URL(to))).toEqual({ allowed: true });
  });

  it.each([
    // Downgrades: an https hop never leads to plain http, not even to loopback.
    ["https://huggingface.co/a", "http://huggingface.co/b", /plain http is allowed only/],
    ["https://huggingface.co/a", "http://127.0.0.1/b", /downgrades https to plain http/],
    ["https://127.0.0.1/a", "http://127.0.0.1/b", /downgrades https to plain http/],
    ["https://10.0.0.5/a", "http://localhost/b", /downgrades https to plain http/],
    // Public → internal.
    ["https://huggingface.co/a", "https://127.0.0.1/b", /from a public host to a loopback/],
    ["https://huggingface.co/a", "https://localhost/b", /from a public host to a loopback/],
    ["https://huggingface.co/a", "https://app.localhost/b", /from a public host to a loopback/],
    ["https://huggingface.co/a", "https://[::1]/b", /from a public host to a loopback/],
    ["https://huggingface.co/a", "https://[::ffff:127.0.0.1]/b", /public host to a loopback/],
    ["https://huggingface.co/a", "https://2130706433/b", /from a public host to a loopback/],
    ["https://huggingface.co/a", "https://10.0.0.1/b", /from a public host to a private/],
    ["https://huggingface.co/a", "https://172.16.0.1/b", /from a public host to a private/],
    ["https://huggingface.co/a", "https://192.168.0.1/b", /from a public host to a private/],
    ["https://huggingface.co/a", "https://169.254.169.254/b", /from a public host to a private/],
    ["https://huggingface.co/a", "https://[fd00::1]/b", /from a public host to a private/],
    ["https://huggingface.co/a", "https://[fe80::1]/b", /from a public host to a private/],
    ["https://huggingface.co/a", "https://[::ffff:10.0.0.1]/b", /public host to a private/],
    // Private → loopback.
    ["https://10.0.0.5/a", "https://127.0.0.1/b", /from a private host to a loopback/],
    ["https://[fd00::5]/a", "https://[::1]/b", /from a private host to a loopback/],
    // Unspecified, everywhere.
    ["https://huggingface.co/a", "https://0.0.0.0/b", /not an address/],
    ["http://127.0.0.1/a", "http://0.0.0.0:8080/b", /not an address/],
    ["http://127.0.0.1/a", "http://0/b", /not an address/],
    ["http://127.0.0.1/a", "http://[::]/b", /not an address/],
    ["http://127.0.0.1/a", "http://[::ffff:0.0.0.0]/b", /not an address/],
    // The other source rules; a plain-http mirror may not send the download to another host.
    ["http://mirror.lan/a", "http://mirror.lan:81/b", /plain http is allowed only to loopback/],
    ["http://10.0.0.5/a", "http://10.0.0.6/b", /plain http is allowed only to loopback/],
    ["http://mirror.lan/a", "http://u:p@mirror.lan/b", /credentials/],
    ["http://127.0.0.1/a", "http://10.0.0.1/b", /plain http is allowed only to loopback/],
    ["http://127.0.0.1/a", "http://example.com/b", /plain http is allowed only to loopback/],
    ["http://127.0.0.1/a", "http://u:p@127.0.0.1/b", /credentials/],
    ["https://huggingface.co/a", "https://u:p@cdn.hf.co/b", /credentials/],
    ["http://127.0.0.1/a", "file:///etc/passwd", /file: is not http\(s\)/],
    ["https://huggingface.co/a", "ftp://cdn.hf.co/b", /ftp: is not http\(s\)/],
    ["https://huggingface.co/a", "javascript:alert(1)", /javascript: is not http\(s\)/],
  ])("%s → %s is refused", (from, to, reason) => {
    const verdict = redirectAllowed(new URL(from), new URL(to));
    expect(verdict.allowed).toBe(false);
    expect(verdict.allowed ? "" : verdict.reason).toMatch(reason);
  });

  it("never lets a chain climb back: each hop is judged from the one before", () => {
    // Loopback source → public → loopback: the second hop comes from a public host.
    const hops = ["http://127.0.0.1/a", "https://cdn.example.com/b", "https://127.0.0.1/c"];
    const verdicts = hops
      .slice(1)
      .map((to, i) => redirectAllowed(new URL(hops[i] ?? ""), new URL(to)));
    expect(verdicts.map((verdict) => verdict.allowed)).toEqual([true, false]);
  });
});
