import path from "node:path";

/** What the preload does, read once from the environment at start-up. */
export interface Config {
  /** Absolute path of the CSV file. */
  readonly logPath: string;
  /** Extra hosts that count as the Mistral API: `host` (any port) or `host:port`. Lower case. */
  readonly extraHosts: readonly string[];
  /** Print each logged call to stderr. */
  readonly verbose: boolean;
  /** Load but observe nothing and create no file. */
  readonly disabled: boolean;
}

/** A configuration read from the environment, with what was wrong in it. */
export interface EnvConfig extends Config {
  /** One line per invalid variable; the default was used instead. */
  readonly warnings: readonly string[];
}

export const DEFAULT_LOG_FILE = "mistral_usage_log.csv";

export const ENV = {
  log: "MISTRAL_USAGE_LOG",
  hosts: "MISTRAL_USAGE_HOSTS",
  verbose: "MISTRAL_USAGE_VERBOSE",
  disable: "MISTRAL_USAGE_DISABLE",
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the configuration from environment variables. Pure: no I/O, never throws. */
export function configFromEnv(env: Env = process.env, cwd: string = process.cwd()): EnvConfig {
  const warnings: string[] = [];

  const log = logFileFromEnv(env);
  if (log.warning !== undefined) warnings.push(log.warning);
  const logPath = path.resolve(cwd, log.file);

  const { hosts: extraHosts, invalid } = parseHosts(env[ENV.hosts] ?? "");
  for (const entry of invalid) {
    warnings.push(`${ENV.hosts}: ignoring "${entry}" (expected host or host:port, e.g. gateway.example.com or 127.0.0.1:8080)`);
  }

  const verbose = parseFlag(env, ENV.verbose, warnings);
  const disabled = parseFlag(env, ENV.disable, warnings);

  return { logPath, extraHosts, verbose, disabled, warnings };
}

/**
 * The log file `MISTRAL_USAGE_LOG` names, as given (relative paths are the caller's to resolve),
 * or the default with the reason when the value is empty or unusable. Shared with the CLI, which
 * must read the file the preload writes.
 */
export function logFileFromEnv(env: Env): { file: string; warning?: string } {
  const raw = env[ENV.log]?.trim();
  if (raw === undefined) return { file: DEFAULT_LOG_FILE };
  if (raw === "") return { file: DEFAULT_LOG_FILE, warning: `${ENV.log} is empty; using ${DEFAULT_LOG_FILE}` };
  if (raw.includes("\0")) return { file: DEFAULT_LOG_FILE, warning: `${ENV.log} contains a NUL byte; using ${DEFAULT_LOG_FILE}` };
  return { file: raw };
}

/** An on/off variable: 1, true, yes, on or 0, false, no, off, empty; anything else is one warning and off. */
export function parseFlag(env: Env, name: string, warnings: string[], whatOffMeans = ""): boolean {
  const raw = env[name];
  if (raw === undefined) return false;
  const value = raw.trim().toLowerCase();
  if (value === "1" || value === "true" || value === "yes" || value === "on") return true;
  if (value === "" || value === "0" || value === "false" || value === "no" || value === "off") return false;
  warnings.push(`${name}="${raw}" is not 1 or 0; using 0${whatOffMeans}`);
  return false;
}

/**
 * Parses `MISTRAL_USAGE_HOSTS`: comma-separated `host` or `host:port`, IPv6 in brackets
 * (`[::1]:8080`); a bare IPv6 address without a port is accepted too. Results are normalised to
 * lower case with IPv6 brackets kept, as `URL.host` spells them.
 */
export function parseHosts(raw: string): { hosts: string[]; invalid: string[] } {
  const hosts: string[] = [];
  const invalid: string[] = [];
  for (const part of raw.split(",")) {
    const entry = part.trim();
    if (entry === "") continue;
    const normalised = normaliseHost(entry);
    if (normalised === undefined) invalid.push(entry);
    else if (!hosts.includes(normalised)) hosts.push(normalised);
  }
  return { hosts, invalid };
}

function normaliseHost(entry: string): string | undefined {
  // A bare IPv6 address ("::1") has colons but no brackets: give it brackets before parsing.
  const candidate = !entry.startsWith("[") && entry.split(":").length > 2 ? `[${entry}]` : entry;
  // Only what a host name, an IP address or a port is made of. URL would accept more and change it:
  // "gw\\x" becomes host "gw" with path "/x", "a%41b" becomes "aab", "gw;evil" stays as it is.
  if (!/^[\p{L}\p{M}\p{N}._:[\]-]+$/u.test(candidate)) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${candidate}`);
  } catch {
    return undefined;
  }
  if (url.pathname !== "/" || !isHostName(url.hostname)) return undefined;
  // URL drops the default port 80; keep what the user wrote so "host:80" still means port 80 only.
  const explicitPort = /:(\d+)$/.exec(candidate)?.[1];
  if (explicitPort !== undefined) {
    const port = Number(explicitPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
    return `${withoutTrailingDot(url.hostname)}:${port}`;
  }
  if (candidate.endsWith(":")) return undefined;
  return withoutTrailingDot(url.hostname);
}

/**
 * A DNS name (labels of letters, digits, `-` and `_`, neither starting nor ending with `-`, after
 * punycode), an IPv4 address, or a bracketed IPv6 address: what a request's host can be. `.corp`
 * (an empty label) is none of them.
 */
function isHostName(hostname: string): boolean {
  if (hostname.startsWith("[")) return true; // URL has already checked the IPv6 address
  const name = withoutTrailingDot(hostname);
  if (name === "" || name.length > 253) return false;
  return name.split(".").every((label) => /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label));
}

/** `gw.local.` and `gw.local` are the same host; requests are compared without the dot. */
function withoutTrailingDot(hostname: string): string {
  return hostname.endsWith(".") ? hostname.slice(0, -1) : hostname;
}
