import { describe, expect, it } from "vitest";
import { formatAgo, formatMb, formatMs, formatPercent, formatRate } from "./format.js";

const NOW = Date.parse("2025-06-15T12:00:00Z");

describe("format", () => {
  it.each([
    [812, "812 MB"],
    [6656, "6.5 GB"],
    [24_576, "24 GB"],
    [81_920, "80 GB"],
    [150_000, "146 GB"],
  ])("formatMb(%d) = %s", (mb, text) => {
    expect(formatMb(mb)).toBe(text);
  });

  it.each([
    [null, "never"],
    ["2025-06-15T12:00:00Z", "just now"],
    ["2025-06-15T11:59:48Z", "12 s ago"],
    ["2025-06-15T11:56:00Z", "4 min ago"],
    ["2025-06-15T09:00:00Z", "3 h ago"],
    ["2025-06-13T12:00:00Z", "2 d ago"],
    ["2025-06-15T12:00:05Z", "just now"],
  ])("formatAgo(%s) = %s", (iso, text) => {
    expect(formatAgo(iso, NOW)).toBe(text);
  });

  it.each([
    [null, "—"],
    [4.56, "4.6 ms"],
    [840, "840 ms"],
    [2400, "2.4 s"],
    [185_000, "3 min 5 s"],
  ])("formatMs(%s) = %s", (ms, text) => {
    expect(formatMs(ms)).toBe(text);
  });

  it.each([
    [1, 8, "13 %"],
    [1, 200, "0.5 %"],
    [0, 10, "0 %"],
    [3, 0, "—"],
  ])("formatPercent(%d, %d) = %s", (part, whole, text) => {
    expect(formatPercent(part, whole)).toBe(text);
  });

  it.each([
    [0, "0/s"],
    [0.02, "0.020/s"],
    [3.4, "3.40/s"],
    [120.4, "120/s"],
  ])("formatRate(%d) = %s", (rate, text) => {
    expect(formatRate(rate)).toBe(text);
  });
});
