import type { ClientRequest, IncomingMessage } from "node:http";
import type { Readable, Writable } from "node:stream";
import { on, subscribeAll, type ChannelHandlers } from "./channels.js";
import type { ExchangeObserver, ObserverFactory } from "./exchange.js";

/**
 * Observes clients built on node:http and node:https (default axios, openai v4 through node-fetch,
 * node-fetch, got, plain `https.request`) through Node's `http.client.*` diagnostics channels.
 *
 * `http.client.response.finish` fires when the response headers are parsed, before the app gets
 * its `'response'` event and before any body byte is pushed. The body is observed by wrapping
 * `push` on that response instance: the parser hands every chunk to `push` (and `null` at the end)
 * whatever the consumer does later. Adding a `'data'` listener instead would switch the stream to
 * flowing mode and lose bytes for a consumer that attaches late. A `'close'` listener does not
 * change the flow. The bytes are still content-encoded: these clients decompress them after `push`.
 *
 * The request body (needed only for the model fallback of speech and conversations) comes from the
 * instance's `write`/`end`, wrapped when `http.client.request.created` announces the request. That
 * channel exists from Node 22; on Node 20, `http.client.request.start` fires only after a body written
 * synchronously has gone, so there the model must come from the response.
 */

interface Exchange {
  readonly observer: ExchangeObserver;
  /** The app destroyed or aborted the request: the `ECONNRESET` that follows is its own doing. */
  cancelledByApp: boolean;
  ended: boolean;
}

export function tapNodeHttp(createObserver: ObserverFactory, onInternalError: (error: unknown) => void): () => void {
  const exchanges = new WeakMap<object, Exchange>();

  const announce = ({ request }: { request: ClientRequest }): void => {
    if (exchanges.has(request)) return; // `created`, then `start` for the same request
    const observer = createObserver(originOf(request), request.path, request.method);
    if (observer === undefined) return;
    const exchange: Exchange = { observer, cancelledByApp: false, ended: false };
    exchanges.set(request, exchange);
    wrapDestroy(request, exchange);
    if (observer.wantsRequestBody) wrapBodyWrites(request, observer, onInternalError);
  };

  const handlers: ChannelHandlers = {
    "http.client.request.created": on(announce),
    "http.client.request.start": on(announce),
    "http.client.response.finish": on<{ request: ClientRequest; response: IncomingMessage }>(({ request, response }) => {
      const exchange = exchanges.get(request);
      if (exchange === undefined) return;
      const { observer } = exchange;
      exchange.observer.responseStart({
        status: response.statusCode ?? 0,
        contentType: header(response, "content-type"),
        contentEncoding: header(response, "content-encoding"),
      });
      wrapPush(response, exchange, onInternalError);
      response.once("close", () => {
        exchanges.delete(request);
        if (exchange.ended) return;
        try {
          observer.responseError(exchange.cancelledByApp ? undefined : (response.errored ?? undefined));
        } catch (error) {
          onInternalError(error);
        }
      });
    }),
    "http.client.request.error": on<{ request: ClientRequest; error: unknown }>(({ request, error }) => {
      const exchange = exchanges.get(request);
      if (exchange === undefined) return;
      exchanges.delete(request);
      exchange.observer.responseError(exchange.cancelledByApp ? undefined : error);
    }),
  };

  return subscribeAll(handlers, onInternalError);
}

/** What wrapPush needs of an exchange: its observer, and a flag for the end it saw. */
export interface PushedExchange {
  readonly observer: ExchangeObserver;
  ended: boolean;
}

/**
 * Forwards every `push` of this readable instance unchanged (same arguments, same return value),
 * observing it first. Used for node:http responses and node:http2 client streams alike: both hand
 * each body chunk to `push`, and `null` at the end, whatever the consumer does later.
 */
export function wrapPush(
  response: Readable,
  exchange: PushedExchange,
  onInternalError: (error: unknown) => void,
  /** Why a `push(null)` came, when it is not always a complete body: undefined for a normal end. */
  cutShort: () => unknown = () => undefined,
): void {
  const { observer } = exchange;
  const original = response.push;
  response.push = function (this: Readable, ...args: Parameters<Readable["push"]>): boolean {
    try {
      const chunk: unknown = args[0];
      if (chunk === null) {
        exchange.ended = true;
        const reason = cutShort();
        if (reason === undefined) observer.responseEnd();
        else observer.responseError(reason);
      } else if (chunk instanceof Uint8Array) {
        observer.responseData(chunk);
      } else if (typeof chunk === "string") {
        observer.responseData(Buffer.from(chunk, typeof args[1] === "string" ? args[1] : "utf8"));
      }
    } catch (error) {
      onInternalError(error);
    }
    return Reflect.apply(original, this, args) as boolean;
  };
}

/**
 * `req.destroy()`, `req.abort()` and an aborted `signal` all end in the instance's `destroy`; after
 * it, Node fails the response with ECONNRESET just as for a connection the server cut, so the only
 * way to tell the app's own cancel from a network failure is to notice the call.
 */
function wrapDestroy(request: ClientRequest, exchange: Exchange): void {
  const original = request.destroy;
  request.destroy = function (this: ClientRequest, ...args: Parameters<ClientRequest["destroy"]>): ClientRequest {
    exchange.cancelledByApp = true;
    return Reflect.apply(original, this, args) as ClientRequest;
  };
}

/** Observes the request body written to this instance (`write` and `end`), forwarding each call unchanged. */
export function wrapBodyWrites(request: Writable, observer: ExchangeObserver, onInternalError: (error: unknown) => void): void {
  for (const name of ["write", "end"] as const) {
    const original = request[name] as (...args: unknown[]) => unknown;
    (request as unknown as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]): unknown {
      try {
        const [chunk, encoding] = args;
        if (chunk instanceof Uint8Array) observer.requestBody(chunk);
        else if (typeof chunk === "string") {
          observer.requestBody(Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8"));
        }
      } catch (error) {
        onInternalError(error);
      }
      return Reflect.apply(original, this, args);
    };
  }
}

function originOf(request: ClientRequest): string {
  const host = request.getHeader("host");
  const authority = typeof host === "string" && host !== "" ? host : request.host;
  return `${request.protocol}//${authority}`;
}

function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}
