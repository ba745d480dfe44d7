import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LogOutput, type WriteChunk } from "./log-output.js";

/** A sink whose writes wait until the test answers them, one by one. */
const fakeSink = () => {
  const calls: { chunk: string; done: Parameters<WriteChunk>[1] }[] = [];
  const write: WriteChunk = (chunk, done) => {
    calls.push({ chunk: chunk.toString(), done });
  };
  return { calls, write };
};

const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: broken`), { code });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("LogOutput", () => {
  it("writes one chunk at a time, joining what was logged meanwhile, and finishes partial writes", async () => {
    const sink = fakeSink();
    const output = new LogOutput({ write: sink.write });
    output.write("a\n");
    output.write("b\n");
    output.write("c\n");
    expect(sink.calls.map((call) => call.chunk)).toEqual(["a\n"]);
    sink.calls[0]?.done(null, 2);
    expect(sink.calls.map((call) => call.chunk)).toEqual(["a\n", "b\nc\n"]);
    sink.calls[1]?.done(null, 2); // only "b\n" went out
    expect(sink.calls[2]?.chunk).toBe("c\n");
    let flushed = false;
    void output.flushed().then(() => {
      flushed = true;
    });
    await Promise.resolve();
    expect(flushed).toBe(false);
    sink.calls[2]?.done(null, 2);
    await Promise.resolve();
    expect(flushed).toBe(true);
  });

  it.each(["EPIPE", "EBADF", "EIO"])(
    "on %s gives up once: reports it, drops every later line, never writes again",
    async (code) => {
      const sink = fakeSink();
      const onBroken = vi.fn();
      const output = new LogOutput({ write: sink.write, onBroken });
      output.write("first\n");
      output.write("queued\n");
      sink.calls[0]?.done(errno(code), 0);
      for (let i = 0; i < 1000; i += 1) output.write(`line ${i}\n`);
      expect(sink.calls).toHaveLength(1);
      expect(onBroken).toHaveBeenCalledTimes(1);
      expect(onBroken.mock.calls[0]?.[0]).toMatchObject({ code });
      expect(output.broken).toBe(true);
      await expect(output.flushed()).resolves.toBeUndefined();
      // Nothing is retried behind its back either.
      await vi.runAllTimersAsync();
      expect(sink.calls).toHaveLength(1);
    },
  );

  it("a sink that throws instead of calling back counts as broken, and the logger never throws", () => {
    const onBroken = vi.fn();
    const output = new LogOutput({
      write: (_chunk, done) => done(errno("EBADF"), 0),
      onBroken: (error) => {
        onBroken(error);
        throw new Error("reporting failed too");
      },
    });
    expect(() => output.write("x\n")).not.toThrow();
    expect(() => output.write("y\n")).not.toThrow();
    expect(onBroken).toHaveBeenCalledTimes(1);
  });

  it("retries a write the output cannot take yet (EAGAIN) after retryMs", async () => {
    const sink = fakeSink();
    const output = new LogOutput({ write: sink.write, retryMs: 20 });
    output.write("a\n");
    sink.calls[0]?.done(errno("EAGAIN"), 0);
    expect(sink.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(19);
    expect(sink.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sink.calls.map((call) => call.chunk)).toEqual(["a\n", "a\n"]);
    sink.calls[1]?.done(null, 2);
    expect(output.broken).toBe(false);
  });

  it("drops lines beyond maxQueuedBytes while the output lags, and says how many once drained", () => {
    const sink = fakeSink();
    const onDropped = vi.fn();
    const output = new LogOutput({ write: sink.write, maxQueuedBytes: 10, onDropped });
    output.write("12345\n"); // in flight: 6 bytes held
    output.write("1234\n"); // 5 more: 11 > 10, dropped
    output.write("123\n"); // 4 more: 10, queued
    output.write("x\n"); // dropped
    sink.calls[0]?.done(null, 6);
    expect(sink.calls[1]?.chunk).toBe("123\n");
    expect(onDropped).not.toHaveBeenCalled();
    sink.calls[1]?.done(null, 4);
    expect(onDropped).toHaveBeenCalledWith(2);
    // A note logged from onDropped is written like any line.
    output.write("note\n");
    expect(sink.calls[2]?.chunk).toBe("note\n");
  });

  it("ignores a second callback from the same write", () => {
    const sink = fakeSink();
    const output = new LogOutput({ write: sink.write });
    output.write("a\n");
    output.write("b\n");
    sink.calls[0]?.done(null, 2);
    sink.calls[0]?.done(null, 2);
    expect(sink.calls.map((call) => call.chunk)).toEqual(["a\n", "b\n"]);
  });
});
