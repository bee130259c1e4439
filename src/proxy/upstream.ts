/**
 * The proxy's own leg to the servers: keep-alive agents that verify certificates against the
 * system's roots plus the user's extra ones, and that go through the user's own proxy (the
 * HTTPS_PROXY that `run` was started with) when one was set, honouring their NO_PROXY.
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import type { Duplex } from "node:stream";

/** Where Linux distributions keep the system's trusted roots (Node 20 trusts only its bundled set). */
export const SYSTEM_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/ca-bundle.pem",
  "/etc/ssl/cert.pem",
];

/** Headers as Node's rawHeaders lists them: name, value, name, value... (case and order kept). */
export type RawHeaders = string[];

export interface UpstreamOptions {
  /** PEM text of extra roots to trust besides Node's and the system's (the user's NODE_EXTRA_CA_CERTS). */
  readonly extraCaPem?: string;
  /** The user's own proxy for the way out, e.g. `http://corp-proxy:3128`. */
  readonly viaProxy?: URL;
  /** The user's NO_PROXY: hosts reached directly even when `viaProxy` is set. */
  readonly noProxy?: string;
}

export interface Upstream {
  /** A request to `origin` (`https://host[:port]` or `http://...`), not yet sent. */
  request(origin: URL, options: { method: string; path: string; headers: RawHeaders }): http.ClientRequest;
  /** A raw TCP connection to host:port (for tunnels), through the user's proxy when that applies. */
  tunnel(host: string, port: number): Promise<Duplex>;
  close(): void;
}

export function createUpstream(options: UpstreamOptions = {}): Upstream {
  const { viaProxy } = options;
  let secureContext: tls.SecureContext | undefined;
  // Built on first use: ~300 roots take a few milliseconds to parse, and a run may never need them.
  const context = (): tls.SecureContext => (secureContext ??= tls.createSecureContext({ ca: trustedRoots(options.extraCaPem) }));
  const direct = (host: string): boolean => viaProxy === undefined || bypassesProxy(host, options.noProxy ?? "");

  const httpsAgent = new https.Agent({ keepAlive: true });
  // Node calls createConnection with a callback and accepts the socket later: the CONNECT round trip fits.
  (httpsAgent as unknown as { createConnection: unknown }).createConnection = (
    opts: tls.ConnectionOptions & { host: string; port: number; servername?: string },
    callback: (error: Error | null, socket?: Duplex) => void,
  ): Duplex | undefined => {
    const tlsOptions: tls.ConnectionOptions = {
      secureContext: context(),
      servername: opts.servername ?? (net.isIP(opts.host) === 0 ? opts.host : undefined),
      ALPNProtocols: ["http/1.1"],
    };
    if (direct(opts.host)) {
      const socket = tls.connect({ ...tlsOptions, host: opts.host, port: opts.port });
      socket.setNoDelay(true);
      return socket;
    }
    connectThrough(viaProxy!, opts.host, opts.port).then(
      // host: the name the certificate must carry (an IP address has no servername).
      (raw) => callback(null, tls.connect({ ...tlsOptions, host: opts.host, socket: raw as net.Socket })),
      (error: Error) => callback(error),
    );
    return undefined;
  };
  const httpAgent = new http.Agent({ keepAlive: true });

  return {
    request(origin, { method, path, headers }) {
      const secure = origin.protocol === "https:";
      const port = origin.port === "" ? (secure ? 443 : 80) : Number(origin.port);
      const hostname = origin.hostname.replace(/^\[|\]$/g, "");
      if (!secure && !direct(hostname)) {
        // Plain HTTP through the user's proxy: the absolute form, as proxies expect it.
        const auth = Object.entries(proxyAuthorization(viaProxy!)).flat();
        return http.request({ host: viaProxy!.hostname, port: proxyPort(viaProxy!), method, path: `${origin.origin}${path}`, headers: asHeaders([...headers, ...auth]), agent: httpAgent, setHost: false });
      }
      return (secure ? https : http).request({ host: hostname, port, method, path, headers: asHeaders(headers), agent: secure ? httpsAgent : httpAgent, setHost: false });
    },
    async tunnel(host, port) {
      if (!direct(host)) return connectThrough(viaProxy!, host, port);
      return new Promise((resolve, reject) => {
        const socket = net.connect({ host, port });
        socket.setNoDelay(true);
        socket.once("connect", () => {
          socket.off("error", reject);
          resolve(socket);
        });
        socket.once("error", reject);
      });
    },
    close() {
      httpsAgent.destroy();
      httpAgent.destroy();
    },
  };
}

/** Node takes rawHeaders-style arrays as `headers`; its types know only the object form. */
function asHeaders(raw: RawHeaders): http.OutgoingHttpHeaders {
  return raw as unknown as http.OutgoingHttpHeaders;
}

/** Node's roots, the system's bundle and the user's extra roots. */
function trustedRoots(extraCaPem: string | undefined): string[] {
  const roots = [...tls.rootCertificates];
  for (const file of SYSTEM_BUNDLES) {
    try {
      roots.push(readFileSync(file, "utf8"));
      break;
    } catch {
      // Not this distribution's path.
    }
  }
  if (extraCaPem !== undefined && extraCaPem.trim() !== "") roots.push(extraCaPem);
  return roots;
}

/** A tunnel to host:port through an HTTP proxy (CONNECT). */
function connectThrough(proxy: URL, host: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const authority = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const request = http.request({ host: proxy.hostname, port: proxyPort(proxy), method: "CONNECT", path: authority, headers: { host: authority, ...proxyAuthorization(proxy) } });
    request.once("connect", (response, socket) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`the proxy ${proxy.host} answered ${response.statusCode} to CONNECT ${authority}`));
        return;
      }
      socket.setNoDelay(true);
      resolve(socket);
    });
    request.once("error", reject);
    request.end();
  });
}

function proxyPort(proxy: URL): number {
  return proxy.port === "" ? (proxy.protocol === "https:" ? 443 : 80) : Number(proxy.port);
}

function proxyAuthorization(proxy: URL): Record<string, string> {
  if (proxy.username === "") return {};
  const credential = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { "proxy-authorization": `Basic ${Buffer.from(credential).toString("base64")}` };
}

/**
 * NO_PROXY as curl and requests read it: comma-separated names (a leading `.` or `*.` is optional
 * and means the domain and its subdomains), `*` for everything; ports are ignored.
 */
export function bypassesProxy(host: string, noProxy: string): boolean {
  const name = host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  for (const raw of noProxy.split(",")) {
    const entry = noProxyName(raw);
    if (entry === "") continue;
    if (entry === "*" || name === entry || name.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** A NO_PROXY entry reduced to the name it covers (`*.Example.com:443` → `example.com`). */
export function noProxyName(raw: string): string {
  let entry = raw.trim().toLowerCase();
  if (entry === "*") return entry;
  entry = entry.replace(/^\*?\./, "");
  if (entry.startsWith("[")) return entry.slice(1, entry.indexOf("]") === -1 ? undefined : entry.indexOf("]"));
  if (entry.split(":").length === 2) entry = entry.slice(0, entry.indexOf(":"));
  return entry.replace(/\.$/, "");
}
