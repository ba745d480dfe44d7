// What a harness may see of the neuron's own environment. The neuron holds secrets there
// (NEURON_TOKEN, HF_TOKEN, cloud credentials of whoever started it); a harness is a big program
// that loads untrusted model files and may log its environment, so it gets an explicit list and
// nothing by default. The watchdog that runs it gets the same environment.

/**
 * System variables every harness gets when the neuron has them: what a program needs to find
 * other programs and libraries (PATH, LD_LIBRARY_PATH), its home and user (HOME, USER, LOGNAME,
 * SHELL), locale and time zone (LANG, LANGUAGE, LC_*, TZ), scratch space (TMPDIR), and where the
 * CUDA and ROCm toolkits live (CUDA_HOME, CUDA_PATH, ROCM_PATH, HIP_PATH). Anything else, such
 * as HF_TOKEN or an HTTPS_PROXY with credentials, must be named in the harness's `inherit_env`.
 */
const SYSTEM_ENV: readonly string[] = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "LANG",
  "LANGUAGE",
  "TZ",
  "TMPDIR",
  "LD_LIBRARY_PATH",
  "CUDA_HOME",
  "CUDA_PATH",
  "ROCM_PATH",
  "HIP_PATH",
];

/** `LC_ALL`, `LC_CTYPE`, …: locale categories, all of them harmless. */
const LOCALE = /^LC_[A-Z_]+$/;

/** Whether the system allow-list passes `name` through from the neuron's environment. */
export const isSystemVariable = (name: string): boolean =>
  SYSTEM_ENV.includes(name) || LOCALE.test(name);

/**
 * The part of a harness's environment taken from the neuron's own: the system allow-list plus
 * the variables the harness's `inherit_env` names, each only when the neuron has it. The rest of
 * the harness's environment is layered on top by the model manager, lowest first: the neuron's
 * GPU settings (CUDA_DEVICE_ORDER), the harness's `env:` from neuron.yaml, then the model's
 * CUDA_VISIBLE_DEVICES and the neuron's marker, which nothing overrides.
 */
export const inheritedEnvironment = (
  parent: Readonly<Record<string, string | undefined>>,
  inherit: readonly string[] = [],
): Record<string, string> =>
  Object.fromEntries(
    Object.entries(parent).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && (isSystemVariable(entry[0]) || inherit.includes(entry[0])),
    ),
  );
