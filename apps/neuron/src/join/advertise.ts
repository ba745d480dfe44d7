import { isIP } from "node:net";

/**
 * The URL cortex reaches this neuron at when it joins: neuron.yaml `advertise_url` when set;
 * else the listen address itself when it names one IP (`10.0.0.5:13131`), else
 * `http://<hostname>:<port>` (a wildcard listen answers on every address; the hostname is the
 * one name of them others can be expected to resolve). `port` is the real one (listen port 0).
 */
export const advertiseUrl = (
  configured: string | undefined,
  host: string,
  port: number,
  hostname: string,
): string => {
  if (configured !== undefined) return configured.replace(/\/+$/, "");
  const wildcard = host === "" || host === "0.0.0.0" || host === "::";
  if (!wildcard && isIP(host) !== 0)
    return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return `http://${wildcard ? hostname : host}:${port}`;
};
