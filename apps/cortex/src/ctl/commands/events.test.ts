import { describe, expect, it } from "vitest";
import { noEventsNote } from "./events.js";

describe("noEventsNote", () => {
  it.each([
    [{}, "no events within 1 s (--since 15m shows recent ones, --follow waits for new ones)"],
    [
      { seconds: "5" },
      "no events within 5 s (--since 15m shows recent ones, --follow waits for new ones)",
    ],
    [
      { since: "15m", seconds: "2" },
      "no events since 15m nor within 2 s (--follow waits for new ones)",
    ],
    [{ follow: true, since: "1h" }, "no events arrived"],
  ])("%o → %s", (options, note) => expect(noEventsNote(options)).toBe(note));
});
