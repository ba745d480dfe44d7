import type { Device } from "@cortex/protocol";

// Real-format output of nvidia-smi and `lspci -vvv` for a few typical hosts, shared by the unit
// tests (CSV text) and the integration tests (fake executables on PATH).

/** One GPU as nvidia-smi knows it, keyed by --query-gpu field name; absent fields print [N/A]. */
export type FakeGpu = Readonly<Record<string, string>>;

/** What nvidia-smi prints for `--query-gpu=<fields> --format=csv,noheader,nounits`. */
export const nvidiaSmiCsv = (gpus: readonly FakeGpu[], fields: readonly string[]): string =>
  gpus.map((gpu) => `${fields.map((field) => gpu[field] ?? "[N/A]").join(", ")}\n`).join("");

const a100 = (): FakeGpu => ({
  index: "0",
  "pci.bus_id": "00000000:3B:00.0",
  "pci.sub_device_id": "0x145F10DE",
  name: "NVIDIA A100-PCIE-40GB",
  driver_version: "535.129.03",
  "fan.speed": "[N/A]",
  "memory.total": "40960",
  "memory.used": "4",
  "memory.free": "40327",
  "utilization.gpu": "0",
  "utilization.memory": "0",
  "temperature.gpu": "34",
  "temperature.memory": "[N/A]",
  "power.draw": "35.63",
  "power.limit": "250.00",
  "clocks.gr": "210",
  "clocks.mem": "1215",
});

const rtx4090 = (index: number, bus: string, fields: Partial<Record<string, string>>): FakeGpu => ({
  index: String(index),
  "pci.bus_id": bus,
  "pci.sub_device_id": "0x51031462",
  name: "NVIDIA GeForce RTX 4090",
  driver_version: "550.54.14",
  "fan.speed": "30",
  "memory.total": "24564",
  "memory.used": "1",
  "memory.free": "24174",
  "utilization.gpu": "0",
  "utilization.memory": "0",
  "temperature.gpu": "38",
  "temperature.memory": "[N/A]",
  "power.draw": "21.37",
  "power.limit": "450.00",
  "clocks.gr": "210",
  "clocks.mem": "405",
  ...fields,
});

const h100 = (index: number, bus: string): FakeGpu => ({
  index: String(index),
  "pci.bus_id": bus,
  "pci.sub_device_id": "0x16C110DE",
  name: "NVIDIA H100 80GB HBM3",
  driver_version: "535.154.05",
  "fan.speed": "[N/A]",
  "memory.total": "81559",
  "memory.used": "0",
  "memory.free": String(81008 - index * 1000),
  "utilization.gpu": String(index * 10),
  "utilization.memory": "0",
  "temperature.gpu": String(30 + index),
  "temperature.memory": "[N/A]",
  "power.draw": "69.48",
  "power.limit": "700.00",
  "clocks.gr": "345",
  "clocks.mem": "2619",
});

const PM = `	Capabilities: [60] Power Management version 3
		Flags: PMEClk- DSI- D1- D2- AuxCurrent=0mA PME(D0-,D1-,D2-,D3hot-,D3cold-)
		Status: D0 NoSoftRst+ PME-Enable- DSel=0 DScale=0 PME-
	Capabilities: [68] Null
	Capabilities: [78] Express (v2) Endpoint, MSI 00
		DevCap:	MaxPayload 256 bytes, PhantFunc 0, Latency L0s unlimited, L1 <64us
			ExtTag+ AttnBtn- AttnInd- PwrInd- RBE+ FLReset+ SlotPowerLimit 75.000W`;

const lspciNvidia3d = (
  bus: string,
  chip: string,
  bar1: string,
  numa: number,
): string => `${bus} 3D controller: NVIDIA Corporation ${chip} (rev a1)
	Subsystem: NVIDIA Corporation Device 16c1
	Physical Slot: ${numa + 2}
	Control: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr+ Stepping- SERR+ FastB2B- DisINTx+
	Status: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
	Latency: 0
	Interrupt: pin A routed to IRQ 18
	NUMA node: ${numa}
	IOMMU group: 41
	Region 0: Memory at b4000000 (32-bit, non-prefetchable) [size=16M]
	Region 1: Memory at 38e000000000 (64-bit, prefetchable) [size=${bar1}]
	Region 3: Memory at 38f000000000 (64-bit, prefetchable) [size=32M]
${PM}
	Kernel driver in use: nvidia
	Kernel modules: nvidiafb, nouveau, nvidia_drm, nvidia
`;

const lspciRtx4090 = (
  bus: string,
): string => `${bus} VGA compatible controller: NVIDIA Corporation AD102 [GeForce RTX 4090] (rev a1) (prog-if 00 [VGA controller])
	Subsystem: Micro-Star International Co., Ltd. [MSI] Device 5103
	Control: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
	Status: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
	Latency: 0
	Interrupt: pin A routed to IRQ 146
	IOMMU group: 14
	Region 0: Memory at fb000000 (32-bit, non-prefetchable) [size=16M]
	Region 1: Memory at 7800000000 (64-bit, prefetchable) [size=32G]
	Region 3: Memory at 7c00000000 (64-bit, prefetchable) [size=32M]
	Region 5: I/O ports at f000 [size=128]
	Expansion ROM at fc000000 [virtual] [disabled] [size=512K]
${PM}
	Kernel driver in use: nvidia
	Kernel modules: nvidiafb, nouveau, nvidia_drm, nvidia
${bus.replace(/\.0$/, ".1")} Audio device: NVIDIA Corporation AD102 High Definition Audio Controller (rev a1)
	Subsystem: Micro-Star International Co., Ltd. [MSI] Device 5103
	Control: I/O- Mem+ BusMaster- SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx-
	Interrupt: pin B routed to IRQ 147
	Region 0: Memory at fc080000 (32-bit, non-prefetchable) [size=16K]
	Kernel driver in use: snd_hda_intel
	Kernel modules: snd_hda_intel
`;

const LSPCI_ASPEED = `03:00.0 VGA compatible controller: ASPEED Technology, Inc. ASPEED Graphics Family (rev 52) (prog-if 00 [VGA controller])
	Subsystem: ASPEED Technology, Inc. ASPEED Graphics Family
	Control: I/O+ Mem+ BusMaster- SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx-
	Status: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=medium >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
	Interrupt: pin A routed to IRQ 19
	NUMA node: 0
	IOMMU group: 22
	Region 0: Memory at 94000000 (32-bit, non-prefetchable) [size=64M]
	Region 1: Memory at 98000000 (32-bit, non-prefetchable) [size=256K]
	Region 2: I/O ports at 2000 [size=128]
	Capabilities: [40] Power Management version 3
		Flags: PMEClk- DSI- D1+ D2+ AuxCurrent=375mA PME(D0+,D1+,D2+,D3hot+,D3cold+)
		Status: D0 NoSoftRst- PME-Enable- DSel=0 DScale=0 PME-
	Capabilities: [50] MSI: Enable- Count=1/4 Maskable- 64bit+
		Address: 0000000000000000  Data: 0000
	Kernel driver in use: ast
	Kernel modules: ast
`;

const LSPCI_HOST_BRIDGE = `00:00.0 Host bridge: Intel Corporation Sky Lake-E DMI3 Registers (rev 07)
	Subsystem: Super Micro Computer Inc Sky Lake-E DMI3 Registers
	Control: I/O- Mem- BusMaster- SpecCycle- MemWINV- VGASnoop- ParErr+ Stepping- SERR+ FastB2B- DisINTx-
	NUMA node: 0
	Capabilities: [90] Express (v2) Root Port (Slot-), MSI 00
`;

const lspciConnectX = (
  bus: string,
): string => `${bus} Ethernet controller: Mellanox Technologies MT2910 Family [ConnectX-7]
	Subsystem: Mellanox Technologies Device 0026
	Control: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
	NUMA node: 0
	Region 0: Memory at 23fffe000000 (64-bit, prefetchable) [size=32M]
	Expansion ROM at ab100000 [disabled] [size=1M]
	Kernel driver in use: mlx5_core
`;

const lspciNvSwitch = (
  bus: string,
): string => `${bus} Bridge: NVIDIA Corporation Device 22a3 (rev a1)
	Subsystem: NVIDIA Corporation Device 1796
	Control: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
	NUMA node: 0
	Region 0: Memory at c1000000 (32-bit, non-prefetchable) [size=32M]
	Kernel driver in use: nvidia
`;

export const LSPCI_RADEON = `c3:00.0 VGA compatible controller: Advanced Micro Devices, Inc. [AMD/ATI] Navi 31 [Radeon RX 7900 XT/7900 XTX/7900 GRE/7900M] (rev c8) (prog-if 00 [VGA controller])
	Subsystem: Sapphire Technology Limited Device 471e
	Control: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
	Status: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
	Interrupt: pin A routed to IRQ 160
	Region 0: Memory at 7000000000 (64-bit, prefetchable) [size=256M]
	Region 2: Memory at 7010000000 (64-bit, prefetchable) [size=2M]
	Region 4: I/O ports at e000 [size=256]
	Region 5: Memory at f6a00000 (32-bit, non-prefetchable) [size=1M]
	Kernel driver in use: amdgpu
	Kernel modules: amdgpu
`;

export interface FakeHost {
  readonly label: string;
  readonly gpus: readonly FakeGpu[];
  /** `lspci -vvv` on that host. */
  readonly lspci: string;
  /** What nvidia-smi's rows mean, as devices. */
  readonly devices: readonly Device[];
}

const DGX_H100_BUSES = ["1B", "43", "52", "61", "9D", "C3", "D1", "DF"];

export const ONE_A100: FakeHost = {
  label: "one A100",
  gpus: [a100()],
  lspci: [
    LSPCI_HOST_BRIDGE,
    LSPCI_ASPEED,
    lspciNvidia3d("3b:00.0", "GA100 [A100 PCIe 40GB]", "64G", 0),
    lspciConnectX("5e:00.0"),
  ].join(""),
  devices: [
    {
      index: 0,
      vendor: "NVIDIA",
      name: "NVIDIA A100-PCIE-40GB",
      vram_total_mb: 40960,
      vram_free_mb: 40327,
      utilization_pct: 0,
      temperature_c: 34,
      bus_id: "00000000:3B:00.0",
      driver_version: "535.129.03",
    },
  ],
};

export const TWO_RTX_4090: FakeHost = {
  label: "two RTX 4090",
  gpus: [
    rtx4090(0, "00000000:01:00.0", {}),
    rtx4090(1, "00000000:41:00.0", {
      "memory.used": "23811",
      "memory.free": "364",
      "utilization.gpu": "97",
      "temperature.gpu": "71",
      "fan.speed": "64",
    }),
  ],
  lspci: [LSPCI_HOST_BRIDGE, lspciRtx4090("01:00.0"), lspciRtx4090("41:00.0")].join(""),
  devices: [
    {
      index: 0,
      vendor: "NVIDIA",
      name: "NVIDIA GeForce RTX 4090",
      vram_total_mb: 24564,
      vram_free_mb: 24174,
      utilization_pct: 0,
      temperature_c: 38,
      bus_id: "00000000:01:00.0",
      driver_version: "550.54.14",
    },
    {
      index: 1,
      vendor: "NVIDIA",
      name: "NVIDIA GeForce RTX 4090",
      vram_total_mb: 24564,
      vram_free_mb: 364,
      utilization_pct: 97,
      temperature_c: 71,
      bus_id: "00000000:41:00.0",
      driver_version: "550.54.14",
    },
  ],
};

export const EIGHT_H100: FakeHost = {
  label: "eight H100 (DGX)",
  gpus: DGX_H100_BUSES.map((bus, index) => h100(index, `00000000:${bus}:00.0`)),
  lspci: [
    LSPCI_HOST_BRIDGE,
    LSPCI_ASPEED,
    ...DGX_H100_BUSES.flatMap((bus, index) => [
      lspciNvidia3d(
        `${bus.toLowerCase()}:00.0`,
        "GH100 [H100 SXM5 80GB]",
        "128G",
        index < 4 ? 0 : 1,
      ),
      lspciConnectX(`${(Number.parseInt(bus, 16) + 1).toString(16)}:00.0`),
    ]),
    ...["05", "06", "07", "08"].map((bus) => lspciNvSwitch(`${bus}:00.0`)),
  ].join(""),
  devices: DGX_H100_BUSES.map((bus, index) => ({
    index,
    vendor: "NVIDIA",
    name: "NVIDIA H100 80GB HBM3",
    vram_total_mb: 81559,
    vram_free_mb: 81008 - index * 1000,
    utilization_pct: index * 10,
    temperature_c: 30 + index,
    bus_id: `00000000:${bus}:00.0`,
    driver_version: "535.154.05",
  })),
};

export const HOSTS: readonly FakeHost[] = [ONE_A100, TWO_RTX_4090, EIGHT_H100];
