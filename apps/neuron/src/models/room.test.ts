import { gpuDevice, neuronModel } from "@cortex/testkit";
import { describe, expect, it } from "vitest";
import { type Candidate, planRoom } from "./room.js";

// Room for a load on one 32000 MB device that two residents of 16000 MB fill, with and without
// busy residents counted (a lazy reload that may wait its turn).

const device = [gpuDevice(0, 32_000)];

const resident = (
  id: string,
  fields: Partial<Candidate> & { status?: "loaded" | "loading" | "recovering" } = {},
) => {
  const { status = "loaded", ...candidate } = fields;
  return {
    model: neuronModel(id, { status, devices: [0], vram_mb: 16_000 }),
    candidate: {
      id,
      devices: [0],
      vram_mb: 16_000,
      priority: 0,
      lastUsedMs: 0,
      idle: true,
      work: 0,
      ...candidate,
    } satisfies Candidate,
  };
};

const plan = (residents: ReturnType<typeof resident>[], busyToo: boolean, needMb = 16_000) =>
  planRoom(
    device,
    residents.map((r) => r.model),
    [0],
    needMb,
    0,
    residents.map((r) => r.candidate),
    busyToo,
  );

describe("planRoom", () => {
  it.each([
    {
      what: "idle residents go, least recently used first, only as many as needed",
      residents: [resident("new", { lastUsedMs: 2 }), resident("old", { lastUsedMs: 1 })],
      needMb: 16_000,
      idleOnly: ["old"],
      withBusy: ["old"],
    },
    {
      what: "busy residents count only when the load may wait, least work first",
      residents: [
        resident("busier", { idle: false, work: 3 }),
        resident("loading", { status: "loading", idle: false, work: 1, lastUsedMs: 5 }),
      ],
      needMb: 16_000,
      idleOnly: null,
      withBusy: ["loading"],
    },
    {
      what: "idle ones before busy ones",
      residents: [resident("busy", { idle: false, work: 1 }), resident("idle", { lastUsedMs: 9 })],
      needMb: 16_000,
      idleOnly: ["idle"],
      withBusy: ["idle"],
    },
    {
      what: "busy ones too when the idle ones are not enough",
      residents: [resident("busy", { idle: false, work: 1 }), resident("idle", { lastUsedMs: 9 })],
      needMb: 32_000,
      idleOnly: null,
      withBusy: ["idle", "busy"],
    },
    {
      what: "never a model no swap may take (recovering) nor one of higher priority",
      residents: [
        resident("recovering", { status: "recovering", idle: false, work: null }),
        resident("vip", { priority: 5, idle: false, work: 1 }),
      ],
      needMb: 16_000,
      idleOnly: null,
      withBusy: null,
    },
  ])("$what", ({ residents, needMb, idleOnly, withBusy }) => {
    const idle = plan(residents, false, needMb);
    const busy = plan(residents, true, needMb);
    expect("evict" in idle ? idle.evict : null).toEqual(idleOnly);
    expect("evict" in busy ? busy.evict : null).toEqual(withBusy);
  });

  it("says which evictions it counted when even they would not do", () => {
    const short = plan([resident("vip", { priority: 5 })], true, 32_000);
    expect(short).toMatchObject({
      needPerDeviceMb: 32_000,
      freeMb: { 0: 16_000 },
      message: expect.stringContaining("busy ones included"),
    });
  });
});
