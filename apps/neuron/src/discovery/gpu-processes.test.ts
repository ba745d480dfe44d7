import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TWO_RTX_4090 } from "./gpu-hosts.fixtures.js";
import {
  COMPUTE_APPS_ARGS,
  type GpuProcess,
  groupFromStat,
  MAX_GPU_PROCESSES,
  memoryByGroup,
  parseComputeApps,
  processGroupOf,
} from "./gpu-processes.js";

describe("parseComputeApps", () => {
  it("asks nvidia-smi for pid, memory and bus, without units or header", () => {
    expect(COMPUTE_APPS_ARGS).toEqual([
      "--query-compute-apps=pid,used_memory,gpu_bus_id",
      "--format=csv,noheader,nounits",
    ]);
  });

  it("reads real rows, a vLLM engine with two processes on two GPUs among them", () => {
    const text = [
      "41233, 20480, 00000000:01:00.0",
      "41250, 38112, 00000000:41:00.0",
      "41251, 38112, 00000000:01:00.0",
      "",
    ].join("\n");
    expect(parseComputeApps(text)).toEqual([
      { pid: 41233, usedMb: 20480, busId: "00000000:01:00.0" },
      { pid: 41250, usedMb: 38112, busId: "00000000:41:00.0" },
      { pid: 41251, usedMb: 38112, busId: "00000000:01:00.0" },
    ]);
  });

  it("reads [N/A] and [Insufficient Permissions] as unknown, and spells bus ids one way", () => {
    const text =
      "7, [N/A], 0000:3b:00.0\r\n8, [Insufficient Permissions], 00000000:3B:00.0\r\n9, 512, [N/A]\n";
    expect(parseComputeApps(text)).toEqual([
      { pid: 7, usedMb: null, busId: "00000000:3B:00.0" },
      { pid: 8, usedMb: null, busId: "00000000:3B:00.0" },
      { pid: 9, usedMb: 512, busId: null },
    ]);
  });

  it.each([
    ["a notice instead of rows", "No running processes found"],
    ["a warning", "WARNING: infoROM is corrupted at gpu 0000:3B:00.0"],
    ["a pid that is not a number", "abc, 100, 00000000:01:00.0"],
    ["a negative pid", "-1, 100, 00000000:01:00.0"],
    ["pid 0", "0, 100, 00000000:01:00.0"],
    ["a pid too large for any kernel", "99999999999, 100, 00000000:01:00.0"],
    ["memory that is not a figure", "12, lots, 00000000:01:00.0"],
    ["negative memory", "12, -5, 00000000:01:00.0"],
    ["a column too many", "12, 100, 00000000:01:00.0, extra"],
    ["a column too few", "12, 100"],
    ["a line far too long", `12, 100, ${"0".repeat(600)}`],
  ])("skips %s", (_, line) => {
    expect(parseComputeApps(`${line}\n13, 64, 00000000:01:00.0\n`)).toEqual([
      { pid: 13, usedMb: 64, busId: "00000000:01:00.0" },
    ]);
  });

  it("reads at most MAX_GPU_PROCESSES rows", () => {
    const text = Array.from(
      { length: MAX_GPU_PROCESSES + 50 },
      (_, i) => `${i + 1}, 1, [N/A]`,
    ).join("\n");
    expect(parseComputeApps(text)).toHaveLength(MAX_GPU_PROCESSES);
  });
});

describe("groupFromStat", () => {
  it("reads the process group, counting from the last parenthesis of the name", () => {
    expect(groupFromStat("4242 (llama-server) S 4200 4201 4201 0 -1 4194560 123 0 0 0")).toBe(4201);
    expect(groupFromStat("4243 (python3 (vllm) worker)) R 4242 4242 4201 0 -1")).toBe(4242);
  });

  it.each([
    ["", "empty"],
    ["4242 llama-server S 1 2 3", "no parentheses"],
    ["4242 (x) S 1", "too few fields"],
    ["4242 (x) S 1 abc", "a group that is not a number"],
    ["4242 (x) S 1 0", "group 0"],
  ])("answers null for %j (%s)", (stat) => {
    expect(groupFromStat(stat)).toBeNull();
  });
});

describe("processGroupOf", () => {
  let proc: string;
  beforeEach(async () => {
    proc = await mkdtemp(join(tmpdir(), "neuron-proc-"));
  });
  afterEach(async () => {
    await rm(proc, { recursive: true, force: true });
  });

  it("reads <procDir>/<pid>/stat, and null for a pid it cannot see", async () => {
    await mkdir(join(proc, "77"));
    await writeFile(join(proc, "77", "stat"), "77 (fake harness) S 1 70 70 0 -1\n");
    expect(await processGroupOf(77, proc)).toBe(70);
    expect(await processGroupOf(78, proc)).toBeNull();
  });

  it("reads this process's group from the real /proc", async () => {
    const group = await processGroupOf(process.pid);
    expect(group).toBeGreaterThan(0);
  });
});

describe("memoryByGroup", () => {
  const row = (fields: Partial<GpuProcess> & Pick<GpuProcess, "pid">): GpuProcess => ({
    group: null,
    usedMb: 0,
    busId: null,
    ...fields,
  });
  const devices = TWO_RTX_4090.devices;

  it("sums a group's processes, and splits them by the device index of their bus", () => {
    const memory = memoryByGroup(
      [
        row({ pid: 11, group: 10, usedMb: 300, busId: "00000000:01:00.0" }),
        row({ pid: 12, group: 10, usedMb: 20_000, busId: "00000000:41:00.0" }),
        row({ pid: 13, group: 10, usedMb: 4_000, busId: "00000000:01:00.0" }),
        row({ pid: 21, group: 20, usedMb: 1_000, busId: "00000000:41:00.0" }),
      ],
      devices,
    );
    expect(memory.get(10)).toEqual({
      usedMb: 24_300,
      byDevice: [
        { index: 0, used_mb: 4_300 },
        { index: 1, used_mb: 20_000 },
      ],
    });
    expect(memory.get(20)).toEqual({ usedMb: 1_000, byDevice: [{ index: 1, used_mb: 1_000 }] });
  });

  it("matches a device whose bus id is spelled another way", () => {
    const spelled = devices.map((device) => ({
      ...device,
      bus_id: device.bus_id?.replace(/^0000/, "").toLowerCase() ?? null,
    }));
    expect(
      memoryByGroup([row({ pid: 1, group: 1, usedMb: 5, busId: "00000000:41:00.0" })], spelled).get(
        1,
      ),
    ).toEqual({ usedMb: 5, byDevice: [{ index: 1, used_mb: 5 }] });
  });

  it("knows nothing of a group with one unknown figure, rather than under-report it", () => {
    const memory = memoryByGroup(
      [
        row({ pid: 11, group: 10, usedMb: 300, busId: "00000000:01:00.0" }),
        row({ pid: 12, group: 10, usedMb: null, busId: "00000000:41:00.0" }),
      ],
      devices,
    );
    expect(memory.get(10)).toEqual({ usedMb: null, byDevice: null });
  });

  it("sums, but does not split, a group on a GPU the device list lacks", () => {
    const memory = memoryByGroup(
      [
        row({ pid: 11, group: 10, usedMb: 300, busId: "00000000:01:00.0" }),
        row({ pid: 12, group: 10, usedMb: 700, busId: "00000000:99:00.0" }),
      ],
      devices,
    );
    expect(memory.get(10)).toEqual({ usedMb: 1_000, byDevice: null });
  });

  it("leaves out processes whose group is unknown (another PID namespace)", () => {
    const memory = memoryByGroup([row({ pid: 999_999, usedMb: 20_000 })], devices);
    expect([...memory]).toEqual([]);
  });
});
