import type { ClientRequest } from "node:http";
import type { Socket } from "node:net";
import { on, subscribeAll } from "./channels.js";
import type { ExchangeObserver, ObserverFactory, ResponseHead } from "./exchange.js";

/**
 * Under `mistral-usage run`, a Node child has the preload AND the run's proxy in its environment:
 * axios honours HTTPS_PROXY (absolute form or CONNECT), fetch and https do with NODE_USE_ENV_PROXY
 * (Node 22.21+, 24.5+, 26). Such a call would be seen twice. The proxy records it (it sees what
 * went on the wire, whatever the client); the preload leaves every exchange whose connection goes
 * to the proxy's address, and keeps recording the calls that bypass it (an app's own undici Agent,
 * Node 20's fetch, NO_PROXY). `run` names the address in this variable; without it nothing here
 * is loaded or subscribed, so ordinary preload users pay nothing.
 */
export const RUN_PROXY_ENV = "MISTRAL_USAGE_PROXY";

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

/** `127.0.0.1:PORT` or `[::1]:PORT`; undefined when unset or malformed. */
export function parseProxyAddress(value: string | undefined): ProxyAddress | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(value?.trim() ?? "");
  if (match === null) return undefined;
  return { address: match[1] ?? match[2]!, port: Number(match[3]) };
}

/**
 * Wraps `observe` so that each observer it hands out can be dropped once the tap's request turns
 * out to be connected to the proxy. The taps stay unaware of this: the wrapper learns which request
 * an observer belongs to from the same diagnostics channel message that made the tap ask for it
 * (subscribers run in subscription order, synchronously, so `attach()` after the taps sees the
 * message right after the tap did). The connection is known when undici sends the headers
 * (`undici:client:sendHeaders` carries the socket) and, for node:http, when the response starts.
 */
export function leaveToRunProxy(
  observe: ObserverFactory,
  proxy: ProxyAddress,
  onInternalError: (error: unknown) => void,
): { observe: ObserverFactory; attach(): () => void } {
  let pending: { observer: DroppableObserver; path: string; method: string } | undefined;
  const byRequest = new WeakMap<object, DroppableObserver>();

  const wrapped: ObserverFactory = (origin, path, method) => {
    const inner = observe(origin, path, method);
    if (inner === undefined) return undefined;
    const observer = new DroppableObserver(inner);
    pending = { observer, path, method };
    return observer;
  };

  /** Pairs the observer just made with the request the channel announced (same path and method). */
  const claim = (request: { path?: unknown; method?: unknown }): void => {
    const made = pending;
    pending = undefined;
    if (made !== undefined && String(request.path) === made.path && String(request.method) === made.method) {
      byRequest.set(request, made.observer);
    }
  };
  const goesToProxy = (socket: Socket | null | undefined): boolean =>
    socket != null && socket.remotePort === proxy.port && socket.remoteAddress === proxy.address;

  const attach = (): (() => void) =>
    subscribeAll(
      {
        "undici:request:create": on<{ request: object }>(({ request }) => claim(request)),
        "undici:client:sendHeaders": on<{ request: object; socket: Socket }>(({ request, socket }) => {
          if (goesToProxy(socket)) byRequest.get(request)?.drop();
        }),
        "http.client.request.created": on<{ request: ClientRequest }>(({ request }) => claim(request)),
        "http.client.request.start": on<{ request: ClientRequest }>(({ request }) => {
          if (!byRequest.has(request)) claim(request);
        }),
        "http.client.response.finish": on<{ request: ClientRequest }>(({ request }) => {
          if (goesToProxy(request.socket)) byRequest.get(request)?.drop();
        }),
      },
      onInternalError,
    );

  return { observe: wrapped, attach };
}

/** Forwards to the pipeline's observer until dropped; then the call ends quietly, with no row. */
class DroppableObserver implements ExchangeObserver {
  #inner: ExchangeObserver | undefined;

  constructor(inner: ExchangeObserver) {
    this.#inner = inner;
  }

  get wantsRequestBody(): boolean {
    return this.#inner?.wantsRequestBody ?? false;
  }

  drop(): void {
    const inner = this.#inner;
    this.#inner = undefined;
    // An error of `undefined` is a cancel: nothing recorded, nothing reported.
    inner?.responseError(undefined);
  }

  requestBody(chunk: Uint8Array): void {
    this.#inner?.requestBody(chunk);
  }

  responseStart(head: ResponseHead): void {
    this.#inner?.responseStart(head);
  }

  responseData(chunk: Uint8Array): void {
    this.#inner?.responseData(chunk);
  }

  responseEnd(): void {
    this.#inner?.responseEnd();
  }

  responseError(error: unknown): void {
    this.#inner?.responseError(error);
  }
}
