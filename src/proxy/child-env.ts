/**
 * What `run` gives the command's environment so that any client sends its Mistral calls through
 * the run's proxy and trusts the run's CA (measured per client in any-language-proxy.md §2):
 * the four proxy variables (lower case wins in curl, requests, urllib and Node), one CA bundle for
 * the variables that *replace* a client's trust store (SSL_CERT_FILE: OpenSSL, httpx, Go;
 * REQUESTS_CA_BUNDLE; CURL_CA_BUNDLE), an additive file for Node, Bun and Deno, and NO_PROXY without
 * the entries that would send Mistral calls around the proxy.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { isIPv4 } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { RUN_PROXY_ENV } from "../taps/via-run-proxy.js";
import { noProxyName, SYSTEM_BUNDLES } from "./upstream.js";

type Env = Readonly<Record<string, string | undefined>>;


/** Variables naming a CA file that replaces the client's whole trust store. */
const REPLACING_CA_VARS = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"] as const;
/** Variables naming extra CA files, added to the runtime's own roots. */
const ADDITIVE_CA_VARS = ["NODE_EXTRA_CA_CERTS", "DENO_CERT"] as const;

export interface CaFiles {
  readonly dir: string;
  /** System roots + the user's CA files + the run's CA. */
  readonly bundle: string;
  /** The user's additive CA files + the run's CA. */
  readonly additive: string;
  /** Removes the folder. */
  remove(): Promise<void>;
}

/**
 * Writes the run's CA files into a fresh private folder (0700; files 0600). The CA's key is never
 * written anywhere: only certificates are.
 */
export async function writeCaFiles(env: Env, caPem: string, warn: (message: string) => void): Promise<CaFiles> {
  const dir = await mkdtemp(path.join(tmpdir(), "mistral-usage-run-"));
  const userFiles = (names: readonly string[]): string[] => {
    const texts: string[] = [];
    const seen = new Set<string>();
    for (const name of names) {
      const file = env[name];
      if (file === undefined || file === "" || seen.has(file)) continue;
      seen.add(file);
      try {
        texts.push(readFileSync(file, "utf8"));
      } catch (error) {
        warn(`${name}=${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); the command will not trust it`);
      }
    }
    return texts;
  };
  const userReplacing = userFiles(REPLACING_CA_VARS);
  const userAdditive = userFiles(ADDITIVE_CA_VARS);
  const bundle = path.join(dir, "ca-bundle.pem");
  const additive = path.join(dir, "run-ca.pem");
  await writeFile(bundle, joinPem([systemRoots(), ...userReplacing, ...userAdditive, caPem]), { mode: 0o600 });
  await writeFile(additive, joinPem([...userAdditive, caPem]), { mode: 0o600 });
  return { dir, bundle, additive, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** The distribution's trusted roots, else Node's bundled ones. */
function systemRoots(): string {
  for (const file of SYSTEM_BUNDLES) {
    try {
      return readFileSync(file, "utf8");
    } catch {
      // Not this distribution's path.
    }
  }
  return tls.rootCertificates.join("\n");
}

/** Concatenated PEM texts, each ending with a newline (`...-----END CERTIFICATE----------BEGIN...` breaks curl). */
export function joinPem(texts: readonly string[]): string {
  return texts
    .filter((t) => t.trim() !== "")
    .map((t) => (t.endsWith("\n") ? t : `${t}\n`))
    .join("");
}

export interface ChildEnvOptions {
  /** `http://user:token@127.0.0.1:PORT` */
  readonly proxyUrl: string;
  /** `127.0.0.1:PORT` */
  readonly proxyAddress: string;
  readonly caFiles: Pick<CaFiles, "bundle" | "additive">;
  /** Host names (no ports) whose calls are intercepted besides mistral.ai and its subdomains. */
  readonly extraHostNames: readonly string[];
}

/** The command's environment, and the NO_PROXY entries that were taken out (worth one warning). Pure. */
export function childProxyEnv(env: Env, options: ChildEnvOptions): { env: Record<string, string | undefined>; removed: string[] } {
  const out: Record<string, string | undefined> = { ...env };
  for (const name of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]) out[name] = options.proxyUrl;
  for (const name of REPLACING_CA_VARS) out[name] = options.caFiles.bundle;
  for (const name of ADDITIVE_CA_VARS) out[name] = options.caFiles.additive;
  // Node 22.21+, 24.5+ and 26: built-in fetch and http(s) use the proxy variables. Node 20 ignores it.
  out["NODE_USE_ENV_PROXY"] = "1";
  // Tells a Node child's preload where the proxy listens, so that it leaves those calls to the proxy.
  out[RUN_PROXY_ENV] = options.proxyAddress;
  const removed: string[] = [];
  for (const name of ["NO_PROXY", "no_proxy"]) {
    const value = env[name];
    if (value === undefined) continue;
    const kept: string[] = [];
    for (const entry of value.split(",")) {
      if (entry.trim() === "") continue;
      if (bypassesMistral(entry, options.extraHostNames)) {
        if (!removed.includes(entry.trim())) removed.push(entry.trim());
      } else kept.push(entry.trim());
    }
    out[name] = kept.join(",");
  }
  return { env: out, removed };
}

/** Would this NO_PROXY entry send calls to a Mistral host around the proxy? */
export function bypassesMistral(entry: string, extraHostNames: readonly string[]): boolean {
  const name = noProxyName(entry);
  if (name === "") return false;
  if (name === "*") return true;
  const covers = (host: string): boolean => host === name || host.endsWith(`.${name}`);
  if (covers("mistral.ai") || name.endsWith(".mistral.ai")) return true;
  const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(name);
  return extraHostNames.some((host) => covers(host) || (cidr !== null && isIPv4(host) && inCidr(host, cidr[1]!, Number(cidr[2]))));
}

function inCidr(address: string, network: string, bits: number): boolean {
  if (!isIPv4(network) || bits < 0 || bits > 32) return false;
  const toInt = (a: string): number => a.split(".").reduce((n, part) => n * 256 + Number(part), 0);
  const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
  return (toInt(address) & mask) >>> 0 === (toInt(network) & mask) >>> 0;
}
