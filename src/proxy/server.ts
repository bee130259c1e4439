/**
 * The local proxy: a tap on the wire that feeds the same pipeline as the preload.
 *
 * Two fronts, one forwarding path:
 * - forward-proxy mode (`run`): CONNECT to a Mistral host is answered with a certificate from the
 *   run's CA and the decrypted requests are forwarded; every other CONNECT is tunnelled byte for
 *   byte (nothing minted, nothing read). Absolute-form requests (`POST https://api.mistral.ai/...`
 *   sent to the proxy in the clear, as axios does) take the same path. A per-run credential is
 *   required (407 without it).
 * - base-URL mode (`proxy`): origin-form requests (`POST /v1/chat/completions`) go to the one
 *   configured upstream, never to a host the client names.
 *
 * Bodies are streamed both ways with backpressure, never buffered or re-encoded; the observer sees
 * the same still-encoded chunks as they pass, as the in-process taps report them.
 */
import { timingSafeEqual } from "node:crypto";
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { ExchangeObserver, ObserverFactory } from "../taps/exchange.js";
import type { CertificateAuthority } from "./ca.js";
import type { Upstream } from "./upstream.js";

export interface ForwardProxyOptions {
  /** Mints the certificates of intercepted hosts. */
  readonly ca: CertificateAuthority;
  /** `user:password` that clients must send in Proxy-Authorization (Basic). */
  readonly credential: string;
  /** Whether CONNECTs and absolute-form requests to host:port are decrypted and observed. */
  readonly intercepts: (host: string, port: number) => boolean;
  /** `--upstream`: intercepted requests go to this origin instead of the host the app named. */
  readonly redirect?: URL;
}

export interface ProxyOptions {
  readonly observe: ObserverFactory;
  readonly upstream: Upstream;
  /** One line per problem (the CLI's reporter). */
  readonly warn: (message: string) => void;
  readonly forward?: ForwardProxyOptions;
  /** Base-URL mode: origin-form requests are forwarded to this URL (its path is a prefix). */
  readonly base?: URL;
  /**
   * Answer `100 Continue` when a request's body has not arrived a moment after its head (forward
   * mode only; default true). urllib3 (requests) leaves Nagle on in CONNECT tunnels and writes the
   * head and the body separately: the body then waits for the ACK of the head, which the kernel
   * delays by ~40 ms when we have nothing to send. Node cannot set TCP_QUICKACK; an interim
   * response carries the ACK at once. Clients must accept unsolicited 1xx (RFC 9110 §15.2), and
   * requests, httpx, curl, aiohttp, Go and Node skip them. Measured in bench/proxy.ts.
   */
  readonly ackEarly?: boolean;
}

export interface InterceptingProxy {
  listen(host: string, port: number): Promise<AddressInfo>;
  /** Exchanges being forwarded right now. */
  readonly inFlight: number;
  /** Resolves when no exchange is in flight any more, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void>;
  /**
   * Stops accepting connections and closes the idle ones, lets the exchanges in flight finish (at
   * most `graceMs`), then closes every connection.
   */
  close(graceMs?: number): Promise<void>;
}

/** Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), plus the proxy's own. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "expect",
]);

interface Target {
  /** The origin the app named (`https://api.mistral.ai`): what the pipeline matches and logs. */
  readonly logical: URL;
  /** Where the request really goes (the same, or --upstream / the base URL). */
  readonly actual: URL;
  /** Path prefix of the base URL, prepended to the request's path. */
  readonly prefix: string;
  readonly observed: boolean;
  /** The client named another host (the proxy itself, or a host --upstream replaces): Host must name `actual`. */
  readonly rewriteHost: boolean;
}

export function createInterceptingProxy(options: ProxyOptions): InterceptingProxy {
  const { observe, upstream, warn, forward, base } = options;
  const ackEarly = options.ackEarly ?? true;
  const expectedAuth = forward === undefined ? undefined : Buffer.from(`Basic ${Buffer.from(forward.credential).toString("base64")}`);
  const sockets = new Set<Duplex>();
  /** Decrypted connections → the host:port the client asked to CONNECT to. */
  const tunnelTargets = new WeakMap<object, { host: string; port: number; secure: boolean }>();
  const contexts = new Map<string, tls.SecureContext>();
  const rejectedHosts = new Set<string>();
  /** Set by close(): connections it ends in their handshake were not refused by a client. */
  let closing = false;
  let inFlight = 0;
  let idle: (() => void)[] = [];

  const track = (socket: Duplex): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (expectedAuth === undefined) return false;
    const given = Buffer.from(req.headers["proxy-authorization"] ?? "");
    return given.length === expectedAuth.length && timingSafeEqual(given, expectedAuth);
  };

  const exchangeDone = (): void => {
    inFlight--;
    if (inFlight === 0) {
      const waiting = idle;
      idle = [];
      for (const resolve of waiting) resolve();
    }
  };

  /** Forwards one request and its response, streaming both, observing when the target is Mistral. */
  const forwardExchange = (req: IncomingMessage, res: ServerResponse, target: Target, path: string, ackEarly = false): void => {
    inFlight++;
    // With Expect: 100-continue, Node has answered 100 already.
    if (ackEarly && hasBody(req) && req.headers.expect === undefined) {
      let bodySeen = false;
      req.once("data", () => {
        bodySeen = true;
      });
      setImmediate(() => {
        if (!bodySeen && !req.readableEnded && !res.headersSent && !res.destroyed) res.writeContinue();
      });
    }
    let settled = false;
    let observer: ExchangeObserver | undefined;
    const report = (what: (o: ExchangeObserver) => void): void => {
      if (observer === undefined) return;
      try {
        what(observer);
      } catch (error) {
        observer = undefined;
        warn(`internal error, please report it: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      }
    };
    const settle = (final: (o: ExchangeObserver) => void): void => {
      if (settled) return;
      settled = true;
      report(final);
      exchangeDone();
    };

    const method = req.method ?? "GET";
    const fullPath = `${target.prefix}${path}`;
    if (target.observed) {
      try {
        observer = observe(target.logical.origin, fullPath, method);
      } catch (error) {
        warn(`internal error, please report it: ${String(error)}`);
      }
    }
    const headers = forwardedHeaders(req.rawHeaders, target.rewriteHost ? target.actual.host : undefined);
    const up = upstream.request(target.actual, { method, path: fullPath, headers });

    up.once("socket", (socket: net.Socket) => socket.setNoDelay(true));
    up.once("response", (upRes: IncomingMessage) => {
      report((o) =>
        o.responseStart({
          status: upRes.statusCode ?? 0,
          contentType: joined(upRes.headers["content-type"]),
          contentEncoding: joined(upRes.headers["content-encoding"]),
        }),
      );
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, withoutHopByHop(upRes.rawHeaders));
      // Headers now, not with the first body chunk: a stream's first event may be seconds away.
      if (upRes.headers["content-length"] !== "0") res.flushHeaders();
      upRes.on("data", (chunk: Buffer) => {
        report((o) => o.responseData(chunk));
        if (!res.write(chunk)) upRes.pause();
      });
      res.on("drain", () => upRes.resume());
      upRes.once("end", () => {
        res.end();
        settle((o) => o.responseEnd());
      });
      upRes.on("error", (error) => {
        // The server cut the body short: the client sees the same cut.
        settle((o) => o.responseError(error));
        res.destroy();
      });
    });
    up.on("error", (error: NodeJS.ErrnoException) => {
      settle((o) => o.responseError(error));
      if (!res.headersSent) {
        const body = `mistral-usage proxy: cannot reach ${target.actual.host}: ${error.code ?? error.message}\n`;
        res.writeHead(502, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
        res.end(body);
      } else {
        res.destroy();
      }
    });
    // The app went away (cancelled, timed out, exited): stop the upstream call at once.
    res.once("close", () => {
      if (res.writableFinished) return;
      up.destroy();
      settle((o) => o.responseError(undefined));
    });

    if (observer?.wantsRequestBody) req.on("data", (chunk: Buffer) => report((o) => o.requestBody(chunk)));
    req.on("error", () => up.destroy());
    req.pipe(up);
  };

  /** Requests inside a decrypted tunnel: origin form, to the host the client CONNECTed to. */
  const inner = http.createServer({ noDelay: true }, (req, res) => {
    const to = tunnelTargets.get(req.socket);
    if (to === undefined || forward === undefined) {
      res.writeHead(500).end();
      return;
    }
    const logical = new URL(`${to.secure ? "https" : "http"}://${authority(to.host, to.port)}`);
    const actual = forward.redirect ?? logical;
    forwardExchange(req, res, { logical, actual, prefix: "", observed: true, rewriteHost: actual !== logical }, req.url ?? "/", ackEarly);
  });
  inner.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const to = tunnelTargets.get(req.socket);
    if (to === undefined || forward === undefined) return socket.destroy();
    const logical = new URL(`${to.secure ? "https" : "http"}://${authority(to.host, to.port)}`);
    pipeUpgrade(req, socket, head, forward.redirect ?? logical, logical.host !== (forward.redirect ?? logical).host);
  });

  const pipeUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, actual: URL, rewriteHost: boolean): void => {
    track(socket);
    const headers = forwardedHeaders(req.rawHeaders, rewriteHost ? actual.host : undefined, true);
    const up = upstream.request(actual, { method: req.method ?? "GET", path: req.url ?? "/", headers });
    up.once("upgrade", (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      track(upSocket);
      const lines = [`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}`];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) lines.push(`${upRes.rawHeaders[i]}: ${upRes.rawHeaders[i + 1]}`);
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      upSocket.pipe(socket).pipe(upSocket);
      upSocket.once("error", () => socket.destroy());
      socket.once("error", () => upSocket.destroy());
    });
    up.once("response", (upRes: IncomingMessage) => {
      // Not upgraded: pass the answer on and close.
      socket.write(`HTTP/1.1 ${upRes.statusCode} ${upRes.statusMessage}\r\nconnection: close\r\n\r\n`);
      upRes.pipe(socket);
    });
    up.on("error", () => socket.destroy());
    up.end();
  };

  const outer = http.createServer({ noDelay: true }, (req, res) => {
    const url = req.url ?? "/";
    if (/^https?:\/\//i.test(url)) {
      // Absolute form: the client treats us as its proxy for this URL.
      if (forward === undefined) return refuse(res, 405, "this proxy forwards only to its upstream; point the client's base URL at it\n");
      if (!authorized(req)) return proxyAuthRequired(res);
      let named: URL;
      try {
        named = new URL(url);
      } catch {
        return refuse(res, 400, "bad request URL\n");
      }
      const port = Number(named.port || (named.protocol === "https:" ? 443 : 80));
      const observed = forward.intercepts(named.hostname.replace(/^\[|\]$/g, ""), port);
      const logical = new URL(named.origin);
      const actual = observed && forward.redirect !== undefined ? forward.redirect : logical;
      return forwardExchange(req, res, { logical, actual, prefix: "", observed, rewriteHost: actual.host !== logical.host }, `${named.pathname}${named.search}`, ackEarly);
    }
    if (base === undefined) return refuse(res, 400, "this is the mistral-usage run proxy: send requests through it as a proxy (HTTPS_PROXY), not to it\n");
    forwardExchange(req, res, { logical: base, actual: base, prefix: base.pathname.replace(/\/$/, ""), observed: true, rewriteHost: true }, url);
  });
  if (base !== undefined) {
    outer.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      req.url = `${base.pathname.replace(/\/$/, "")}${req.url ?? "/"}`;
      pipeUpgrade(req, socket, head, base, true);
    });
  }

  /** Answers the client's TLS handshake with a leaf of the run's CA; the requests inside go to `inner`. */
  const interceptTls = (socket: net.Socket, to: { host: string; port: number }): void => {
    let context = contexts.get(to.host);
    if (context === undefined) {
      context = tls.createSecureContext(forward!.ca.leafFor(to.host));
      contexts.set(to.host, context);
    }
    // TLSSocket feeds itself what is already buffered on `socket` (the byte we looked at).
    const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: ["http/1.1"] });
    tunnelTargets.set(secure, { ...to, secure: true });
    track(secure);
    let handshaken = false;
    secure.once("secure", () => {
      handshaken = true;
    });
    const refused = (reason: string): void => {
      if (handshaken || closing || rejectedHosts.has(to.host)) return;
      rejectedHosts.add(to.host);
      warn(`a client refused the run's certificate for ${to.host} (${reason}): its calls to ${to.host} are not logged; it may ignore SSL_CERT_FILE/REQUESTS_CA_BUNDLE or pin certificates (see mistral-usage proxy for a base-URL setup)`);
    };
    // The handshake failed: the client refused our certificate, with an alert or a reset...
    secure.on("error", (error: NodeJS.ErrnoException) => refused(tlsReason(error)));
    // ...or by just closing the connection: Deno refusing it through a proxy shows here as a close, no error.
    secure.once("close", () => refused("it closed the connection during the TLS handshake"));
    inner.emit("connection", secure);
  };

  outer.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    (socket as net.Socket).setNoDelay?.(true);
    socket.on("error", () => socket.destroy());
    if (forward === undefined) return rawReply(socket, 405, "Method Not Allowed");
    if (!authorized(req)) {
      return rawReply(socket, 407, "Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="mistral-usage"\r\n');
    }
    const to = parseAuthority(req.url ?? "");
    if (to === undefined) return rawReply(socket, 400, "Bad Request");
    if (head.length > 0) socket.unshift(head);
    if (forward.intercepts(to.host, to.port) && forward.ca.permits(to.host)) {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      // Clients speak first in both TLS and HTTP. undici's proxy agent tunnels plain http:// URLs
      // too, so look at the first byte: a TLS handshake record starts with 0x16.
      socket.once("data", (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        if (first[0] === 0x16) interceptTls(socket as net.Socket, to);
        else {
          tunnelTargets.set(socket, { ...to, secure: false });
          inner.emit("connection", socket);
          socket.resume();
        }
      });
      return;
    }
    // Not a Mistral host: a blind tunnel.
    upstream.tunnel(to.host, to.port).then(
      (remote) => {
        track(remote);
        socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        remote.pipe(socket).pipe(remote);
        remote.on("error", () => socket.destroy());
        socket.once("close", () => remote.destroy());
      },
      () => rawReply(socket, 502, "Bad Gateway"),
    );
  });
  outer.on("connection", (socket: net.Socket) => track(socket));
  inner.on("error", (error: Error) => warn(`proxy: ${error.message}`));
  // A client that sends garbage gets a 400 and a closed socket, nothing more.
  outer.on("clientError", (_error, socket: Duplex) => rawReply(socket, 400, "Bad Request"));
  inner.on("clientError", (_error, socket: Duplex) => socket.destroy());

  const drain = (timeoutMs: number): Promise<void> =>
    inFlight === 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          idle.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });

  return {
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        outer.once("error", reject);
        outer.listen(port, host, () => {
          outer.off("error", reject);
          // Listening errors reject listen(); anything later is one line, never a crash of `run`.
          outer.on("error", (error: Error) => warn(`proxy: ${error.message}`));
          resolve(outer.address() as AddressInfo);
        });
      }),
    get inFlight() {
      return inFlight;
    },
    drain,
    close: async (graceMs = 0) => {
      closing = true;
      const closed = new Promise<void>((resolve) => outer.close(() => resolve()));
      outer.closeIdleConnections();
      inner.closeIdleConnections();
      if (graceMs > 0) await drain(graceMs);
      outer.closeAllConnections();
      inner.closeAllConnections();
      for (const socket of sockets) socket.destroy();
      upstream.close();
      await closed;
    },
  };
}

/** Request headers for the upstream: the client's own (names as sent), minus hop-by-hop ones. */
function forwardedHeaders(rawHeaders: readonly string[], host: string | undefined, keepUpgrade = false): string[] {
  const out: string[] = [];
  const named = connectionTokens(rawHeaders);
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (keepUpgrade && (lower === "connection" || lower === "upgrade")) {
      out.push(name, rawHeaders[i + 1]!);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    if (lower === "host" && host !== undefined) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  if (host !== undefined) out.unshift("Host", host);
  return out;
}

function withoutHopByHop(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  const named = connectionTokens(rawHeaders);
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const lower = rawHeaders[i]!.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    out.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  return out;
}

/** Header names listed in Connection: they are hop-by-hop too. */
function connectionTokens(rawHeaders: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== "connection") continue;
    for (const token of rawHeaders[i + 1]!.split(",")) names.add(token.trim().toLowerCase());
  }
  names.delete("close");
  names.delete("keep-alive");
  return names;
}

/** A request that announces a body (content-length > 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
}

function joined(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

/** `host:port` for a URL (the URL parser drops the scheme's default port itself). */
function authority(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/** `host:port` of a CONNECT (IPv6 in brackets). */
export function parseAuthority(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/\s]+)):(\d{1,5})$/.exec(text);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2]!).toLowerCase().replace(/\.$/, ""), port };
}

function refuse(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}

function proxyAuthRequired(res: ServerResponse): void {
  res.writeHead(407, { "proxy-authenticate": 'Basic realm="mistral-usage"', "content-length": 0, connection: "close" });
  res.end();
}

function rawReply(socket: Duplex, status: number, reason: string, extra = ""): void {
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`);
  else socket.destroy();
}

function tlsReason(error: NodeJS.ErrnoException): string {
  const alert = /alert ([a-z ]+)/i.exec(error.message)?.[1]?.trim();
  if (alert !== undefined) return `TLS alert: ${alert.toLowerCase()}`;
  return error.code ?? error.message;
}
