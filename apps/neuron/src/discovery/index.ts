export { type CombinedSourceOptions, combineDevices, combinedSource } from "./combined-source.js";
export { DiscoveryCache, type DiscoveryCacheOptions } from "./discovery-cache.js";
export {
  COMPUTE_APPS_ARGS,
  type GpuProcess,
  type GpuProcessSource,
  type GroupMemory,
  memoryByGroup,
  nvidiaSmiProcesses,
  parseComputeApps,
} from "./gpu-processes.js";
export { type GpuSource, HARNESS_GPU_ENV, normalizeBusId } from "./gpu-source.js";
export { type HostFacts, hostInfoFrom, readHostInfo } from "./host-info.js";
export {
  NVIDIA_SMI_ARGS,
  NVIDIA_SMI_FIELDS,
  type NvidiaSmiOptions,
  nvidiaSmiSource,
  parseNvidiaSmiCsv,
} from "./nvidia-smi.js";
export { staticSource } from "./static-source.js";
export {
  devicesFromControllers,
  type GraphicsController,
  type SystemInformationOptions,
  systeminformationSource,
} from "./systeminformation-source.js";
