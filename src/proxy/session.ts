/**
 * A proxy and the pipeline it feeds, started and stopped as one: what `mistral-usage run` and
 * `mistral-usage proxy` load (dynamically: report and validate never pay for this code).
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP, isIPv6 } from "node:net";
import type { Config, EnvConfig } from "../config.js";
import { HostMatcher } from "../endpoints.js";
import { createPipeline } from "../pipeline.js";
import { sayConfigWarnings, type Reporter } from "../report.js";
import { sinksFromConfig } from "../sink/from-config.js";
import { CertificateAuthority } from "./ca.js";
import { childProxyEnv, writeCaFiles } from "./child-env.js";
import { createInterceptingProxy } from "./server.js";
import { createUpstream } from "./upstream.js";

type Env = Readonly<Record<string, string | undefined>>;

/** How long a stopping proxy waits for exchanges still in flight to finish recording. */
const DRAIN_MS = 5000;

export interface ProxySession {
  /** `http://HOST:PORT` */
  readonly url: string;
  /** Stops accepting, lets in-flight exchanges finish (bounded), writes every row, cleans up. */
  stop(): Promise<void>;
}

export interface RunSession extends ProxySession {
  /** The command's environment. */
  readonly env: Record<string, string | undefined>;
}

/** `run`'s forward proxy: intercepts Mistral hosts with a fresh in-memory CA, tunnels the rest. */
export async function startRunProxy(options: { config: EnvConfig; env: Env; reporter: Reporter; redirect?: URL }): Promise<RunSession> {
  const { config, reporter } = options;
  const warn = (message: string): void => reporter.warn(message);
  // What is wrong with the configuration is said here, once, whatever the command's language; its
  // processes inherit the list of what was said (SAID_ENV) and do not repeat it.
  const env = { ...options.env };
  sayConfigWarnings(config.warnings, warn, env);
  const hosts = new HostMatcher(config.extraHosts);
  const extraHostNames = [...new Set(config.extraHosts.map(hostName))];
  const ca = new CertificateAuthority({ permitted: ["mistral.ai", ...extraHostNames] });
  const pipeline = createPipeline({ sinks: sinksFromConfig(config, reporter, env), extraHosts: config.extraHosts, warn });
  const upstream = createUpstream(userUpstreamOptions(env, warn));
  const credential = `mu:${randomBytes(18).toString("base64url")}`;
  const proxy = createInterceptingProxy({
    observe: pipeline.observe,
    upstream,
    warn,
    // For the benchmark's before/after figure only (bench/proxy.ts); not a user setting.
    ackEarly: env["MISTRAL_USAGE_BENCH_NO_EARLY_ACK"] !== "1",
    forward: {
      ca,
      credential,
      intercepts: (host, port) => hosts.matches(isIPv6(host) ? `[${host}]` : host, String(port)),
      ...(options.redirect === undefined ? {} : { redirect: options.redirect }),
    },
  });
  const address = await proxy.listen("127.0.0.1", 0);
  const hostPort = `127.0.0.1:${address.port}`;
  const caFiles = await writeCaFiles(env, ca.certPem, warn);
  const { env: childEnv, removed } = childProxyEnv(env, {
    proxyUrl: `http://${credential}@${hostPort}`,
    proxyAddress: hostPort,
    caFiles,
    extraHostNames,
  });
  if (removed.length > 0) warn(`removed ${removed.join(", ")} from NO_PROXY for the command: it would send Mistral calls around the proxy`);
  return {
    url: `http://${hostPort}`,
    env: childEnv,
    stop: async () => {
      await proxy.close(DRAIN_MS);
      pipeline.close();
      await caFiles.remove();
    },
  };
}

/** `proxy`'s base-URL front: every request is forwarded to `base` and observed. */
export async function startBaseUrlProxy(options: { config: Config; env: Env; reporter: Reporter; base: URL; host: string; port: number }): Promise<ProxySession> {
  const { config, env, reporter, base } = options;
  const warn = (message: string): void => reporter.warn(message);
  // Whatever the upstream is (a company gateway too), what goes through this proxy is Mistral traffic.
  const upstreamHost = base.port === "" ? base.hostname : `${base.hostname}:${base.port}`;
  const pipeline = createPipeline({ sinks: sinksFromConfig(config, reporter, { ...env }), extraHosts: [...config.extraHosts, upstreamHost], warn });
  const proxy = createInterceptingProxy({ observe: pipeline.observe, upstream: createUpstream(userUpstreamOptions(env, warn)), warn, base });
  const address = await proxy.listen(options.host, options.port);
  const shown = isIP(address.address) === 6 ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}`,
    stop: async () => {
      await proxy.close(DRAIN_MS);
      pipeline.close();
    },
  };
}

/** The user's own way out: their proxy (saved before `run` replaces it), NO_PROXY and extra roots. */
function userUpstreamOptions(env: Env, warn: (message: string) => void): Parameters<typeof createUpstream>[0] {
  const options: { extraCaPem?: string; viaProxy?: URL; noProxy?: string } = {};
  const extra = env["NODE_EXTRA_CA_CERTS"];
  if (extra !== undefined && extra !== "") {
    try {
      options.extraCaPem = readFileSync(extra, "utf8");
    } catch {
      // Node itself already warned about an unreadable NODE_EXTRA_CA_CERTS at start-up.
    }
  }
  const proxy = env["https_proxy"] ?? env["HTTPS_PROXY"];
  if (proxy !== undefined && proxy.trim() !== "") {
    try {
      options.viaProxy = new URL(proxy.includes("://") ? proxy : `http://${proxy}`);
    } catch {
      warn(`HTTPS_PROXY=${proxy} is not a URL; connecting directly`);
    }
  }
  const noProxy = env["no_proxy"] ?? env["NO_PROXY"];
  if (noProxy !== undefined) options.noProxy = noProxy;
  return options;
}

/** `host:port`, `[v6]:port` or `host` → the name alone. */
function hostName(hostOrHostPort: string): string {
  if (hostOrHostPort.startsWith("[")) return hostOrHostPort.slice(1, hostOrHostPort.indexOf("]"));
  return /:\d+$/.test(hostOrHostPort) ? hostOrHostPort.slice(0, hostOrHostPort.lastIndexOf(":")) : hostOrHostPort;
}
