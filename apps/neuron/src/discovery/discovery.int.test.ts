import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Device, NodeInfo } from "@cortex/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { combinedSource } from "./combined-source.js";
import { DiscoveryCache } from "./discovery-cache.js";
import { writeFakeNvidiaSmi } from "./fake-nvidia-smi.fixtures.js";
import { type FakeGpu, HOSTS, LSPCI_RADEON, ONE_A100, TWO_RTX_4090 } from "./gpu-hosts.fixtures.js";
import { nvidiaSmiProcesses } from "./gpu-processes.js";
import { readHostInfo } from "./host-info.js";
import { nvidiaSmiSource } from "./nvidia-smi.js";
import { systeminformationSource } from "./systeminformation-source.js";

// The real path through systeminformation and nvidia-smi, with fake `nvidia-smi` and `lspci`
// executables. PATH holds nothing but the fakes' folder, so a real lspci, nvidia-smi, clinfo or
// dmidecode on the test machine is never found; the shells systeminformation starts are /bin/sh
// by absolute path. systeminformation snapshots process.env when it is loaded, but the sources
// load it afresh in a worker thread on every read, so setting PATH around each read is enough.

let bin: string;
const savedPath = process.env.PATH;

beforeEach(async () => {
  bin = await mkdtemp(join(tmpdir(), "neuron-discovery-"));
});

afterEach(async () => {
  process.env.PATH = savedPath;
  await rm(bin, { recursive: true, force: true });
});

const executable = async (name: string, text: string): Promise<string> => {
  const file = join(bin, name);
  await writeFile(file, text);
  await chmod(file, 0o755);
  return file;
};

/** Answers --query-gpu like the real one, refusing fields it does not know as the real one does. */
const fakeNvidiaSmi = (gpus: readonly FakeGpu[] | "driver-failure" | "hang"): Promise<string> =>
  writeFakeNvidiaSmi(bin, typeof gpus === "string" ? gpus : { gpus });

/** Prints a saved `lspci -vvv` with shell builtins only. */
const fakeLspci = async (text: string): Promise<void> => {
  const saved = join(bin, "lspci.txt");
  await writeFile(saved, text);
  await executable(
    "lspci",
    `#!/bin/sh\nwhile IFS= read -r line || [ -n "$line" ]; do printf '%s\\n' "$line"; done < '${saved}'\n`,
  );
};

/** Runs `read` with only the fakes on PATH. */
const onFakePath = async <T>(read: () => Promise<T>): Promise<T> => {
  process.env.PATH = bin;
  try {
    return await read();
  } finally {
    process.env.PATH = savedPath;
  }
};

const collect = () => {
  const warnings: string[] = [];
  return { warnings, onWarning: (message: string) => warnings.push(message) };
};

describe.each(HOSTS)("on a host with $label", (host) => {
  it("systeminformation merges nvidia-smi's rows into lspci's controllers", async () => {
    await fakeNvidiaSmi(host.gpus);
    await fakeLspci(host.lspci);
    const devices = await onFakePath(() => systeminformationSource().read());
    // The same GPUs, except what systeminformation loses: it drops nvidia-smi figures of 0.
    expect(devices).toEqual(
      host.devices.map((device) => ({
        ...device,
        utilization_pct: device.utilization_pct === 0 ? null : device.utilization_pct,
      })),
    );
  });

  it("combinedSource reports nvidia-smi's GPUs", async () => {
    await fakeNvidiaSmi(host.gpus);
    await fakeLspci(host.lspci);
    const { warnings, onWarning } = collect();
    const devices = await onFakePath(() => combinedSource({ onWarning }).read());
    expect(devices).toEqual(host.devices);
    expect(devices.map((device) => Device.parse(device))).toEqual(devices);
    expect(warnings).toEqual([]);
  });

  it("combinedSource still finds them without lspci, where systeminformation finds none", async () => {
    await fakeNvidiaSmi(host.gpus);
    const { warnings, onWarning } = collect();
    const [bySi, combined] = await onFakePath(() =>
      Promise.all([systeminformationSource().read(), combinedSource({ onWarning }).read()]),
    );
    expect(bySi).toEqual([]);
    expect(combined).toEqual(host.devices);
    expect(warnings).toEqual([]);
  });
});

describe("combinedSource on other hosts", () => {
  it("finds nothing, and says nothing, without nvidia-smi or lspci", async () => {
    const { warnings, onWarning } = collect();
    expect(await onFakePath(() => combinedSource({ onWarning }).read())).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it("appends an AMD GPU after nvidia-smi's, with its index stable across reads", async () => {
    await fakeNvidiaSmi(TWO_RTX_4090.gpus);
    await fakeLspci(TWO_RTX_4090.lspci + LSPCI_RADEON);
    const { warnings, onWarning } = collect();
    const source = combinedSource({ onWarning });
    const first = await onFakePath(() => source.read());
    expect(first).toEqual([
      ...TWO_RTX_4090.devices,
      {
        index: 2,
        vendor: "AMD",
        name: "Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M]",
        // The largest PCI memory window: all systeminformation knows without clinfo.
        vram_total_mb: 256,
        vram_free_mb: 256,
        utilization_pct: null,
        temperature_c: null,
        bus_id: "00000000:C3:00.0",
        driver_version: null,
      },
    ]);
    expect(await onFakePath(() => source.read())).toEqual(first);
    expect(warnings).toEqual([]);
  });

  it("falls back to nvidia-smi alone, with a warning, when systeminformation hangs", async () => {
    await fakeNvidiaSmi(ONE_A100.gpus);
    // Waits on its stdin, which closes when the worker that started it is terminated.
    await executable("lspci", "#!/bin/sh\nread -r line\n");
    const { warnings, onWarning } = collect();
    const inventory = systeminformationSource({ timeoutMs: 500 });
    const source = combinedSource({ onWarning, inventory });
    expect(await onFakePath(() => source.read())).toEqual(ONE_A100.devices);
    expect(warnings).toEqual([
      "systeminformation could not list the GPUs, so only nvidia-smi's are offered: systeminformation did not answer within 500 ms",
    ]);
  });

  it("leaves out an NVIDIA card that has no driver, with one warning", async () => {
    await fakeLspci(ONE_A100.lspci);
    const { warnings, onWarning } = collect();
    const source = combinedSource({ onWarning });
    expect(await onFakePath(() => source.read())).toEqual([]);
    expect(await onFakePath(() => source.read())).toEqual([]);
    expect(warnings).toEqual([
      "the NVIDIA GPU GA100 [A100 PCIe 40GB] at 00000000:3B:00.0 is on the PCI bus but nvidia-smi does not list it, so it is not offered; is the NVIDIA driver installed and loaded?",
    ]);
  });

  it("fails the read when the driver is broken, and the cache keeps what it had", async () => {
    await fakeNvidiaSmi(ONE_A100.gpus);
    const { warnings, onWarning } = collect();
    const cache = new DiscoveryCache({
      name: "gpu-1",
      source: combinedSource({ onWarning }),
      host: () => readHostInfo("gpu-1"),
      harnesses: [],
      refreshMs: 60_000,
      onWarning,
    });
    try {
      await onFakePath(() => cache.start());
      expect(cache.current().devices).toEqual(ONE_A100.devices);
      await fakeNvidiaSmi("driver-failure");
      await onFakePath(() => cache.refresh());
      expect(cache.current().devices).toEqual(ONE_A100.devices);
      expect(warnings).toEqual([
        "could not read the GPUs, keeping the last known list: nvidia-smi exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
      ]);
    } finally {
      cache.stop();
    }
  });
});

describe("nvidiaSmiSource", () => {
  it("answers an empty list when nvidia-smi is not installed", async () => {
    expect(await onFakePath(() => nvidiaSmiSource().read())).toEqual([]);
  });

  it("answers an empty list when the driver sees no GPU", async () => {
    await fakeNvidiaSmi([]);
    expect(await onFakePath(() => nvidiaSmiSource().read())).toEqual([]);
  });

  it("runs the command it is given, PATH or not", async () => {
    const command = await fakeNvidiaSmi(TWO_RTX_4090.gpus);
    expect(await nvidiaSmiSource({ command }).read()).toEqual(TWO_RTX_4090.devices);
  });

  it("gives up on an nvidia-smi that hangs", async () => {
    const command = await fakeNvidiaSmi("hang");
    await expect(nvidiaSmiSource({ command, timeoutMs: 300 }).read()).rejects.toThrow(
      "nvidia-smi did not answer within 300 ms",
    );
  });
});

describe("readHostInfo", () => {
  it("describes this machine", async () => {
    const info = await readHostInfo("test-node");
    expect(NodeInfo.parse(info)).toEqual(info);
    expect(info.name).toBe("test-node");
    expect(info.hostname).not.toBe("");
    expect(info.kernel).not.toBe("");
    expect(info.memory_mb).toBeGreaterThan(0);
  });

  it("falls back to node:os when systeminformation does not answer in time", async () => {
    const info = await readHostInfo("test-node", { timeoutMs: 1 });
    expect(NodeInfo.parse(info)).toEqual(info);
    expect(info.memory_mb).toBeGreaterThan(0);
  });
});

describe("nvidiaSmiProcesses", () => {
  /** A process in a group of its own (detached), as a harness is; killed after the test. */
  const leader = () => {
    const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], {
      detached: true,
      stdio: "ignore",
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error("could not start a process");
    const exited = new Promise((resolve) => child.once("exit", resolve));
    return { pid, exited, kill: () => process.kill(-pid, "SIGKILL") };
  };

  it("reads each live process's memory, in its process group, on its GPU", async () => {
    const harness = leader();
    const gone = leader();
    gone.kill();
    await gone.exited;
    try {
      const command = await writeFakeNvidiaSmi(bin, {
        gpus: TWO_RTX_4090.gpus,
        apps: [
          { pid: harness.pid, used_memory: "20480", gpu_bus_id: "00000000:01:00.0" },
          { pid: harness.pid, used_memory: "[N/A]", gpu_bus_id: "00000000:41:00.0" },
          { pid: gone.pid, used_memory: "4096", gpu_bus_id: "00000000:01:00.0" },
          { pid: "not-a-pid", used_memory: "[N/A]", gpu_bus_id: "00000000:01:00.0" },
        ],
      });
      const rows = await nvidiaSmiProcesses({ command }).read();
      expect(rows).toEqual([
        { pid: harness.pid, group: harness.pid, usedMb: 20480, busId: "00000000:01:00.0" },
        { pid: harness.pid, group: harness.pid, usedMb: null, busId: "00000000:41:00.0" },
      ]);
      // The device read sees what the live process holds as used.
      const [first] = await nvidiaSmiSource({ command }).read();
      expect(first?.vram_free_mb).toBe(24174 - 20480);
    } finally {
      harness.kill();
    }
  });

  it("cannot tell without nvidia-smi, and lists none when the driver sees no GPU", async () => {
    expect(await onFakePath(() => nvidiaSmiProcesses().read())).toBeNull();
    const command = await writeFakeNvidiaSmi(bin, { gpus: [] });
    expect(await nvidiaSmiProcesses({ command }).read()).toEqual([]);
  });

  it("fails the read when nvidia-smi fails, and gives up on one that hangs", async () => {
    const broken = await writeFakeNvidiaSmi(bin, "driver-failure");
    await expect(nvidiaSmiProcesses({ command: broken }).read()).rejects.toThrow(
      "nvidia-smi exited with code 9",
    );
    const hung = await writeFakeNvidiaSmi(bin, "hang");
    await expect(nvidiaSmiProcesses({ command: hung, timeoutMs: 300 }).read()).rejects.toThrow(
      "nvidia-smi did not answer within 300 ms",
    );
  });
});
