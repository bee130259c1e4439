import { on, subscribeAll, type ChannelHandlers } from "./channels.js";
import type { ExchangeObserver, ObserverFactory, ResponseHead } from "./exchange.js";

/**
 * Observes every request made by any copy of undici (Node's built-in fetch and an app's own npm
 * undici) through undici's diagnostics channels. Channels are global by name, fire for every
 * dispatcher (the global one, an app's own Agent, `{ dispatcher }` in fetch init, a proxy agent,
 * one installed by `setGlobalDispatcher` later) and need no change to fetch, dispatchers or
 * responses: the app's request path is untouched.
 *
 * Body bytes come from `undici:request:bodyChunkReceived` / `bodyChunkSent` (undici >= 7.11: Node 24
 * and 26, npm undici 7 and 8). Older copies (Node 20 and 22 built-in, npm undici 6) have no such
 * channels, so the matched request's own `onData` / `onBodySent` is wrapped instead; a chunk that
 * the channel already reported during the same call is not counted twice. Once a copy of undici
 * has been seen publishing chunks, its later requests are not wrapped at all.
 */

interface UndiciRequest {
  origin?: unknown;
  path?: unknown;
  method?: unknown;
  [method: string]: unknown;
}

interface Exchange {
  readonly observer: ExchangeObserver;
  /** Chunks reported by the channel, so that the `onData` wrapper can tell whether it must report. */
  channelResponseChunks: number;
  channelRequestChunks: number;
}

export function tapUndici(createObserver: ObserverFactory, onInternalError: (error: unknown) => void): () => void {
  const exchanges = new WeakMap<object, Exchange>();
  // Request classes (one per copy of undici) seen publishing body chunks on the channels: their
  // requests need no onData/onBodySent wrapper, so after its first call such a copy is observed
  // through the channels alone. Both channels arrived together, in undici 7.11.
  const publishesChunks = new WeakSet<object>();

  // Request bodies matter only to the few endpoints whose responses may not name the model
  // (conversations, speech): the channel is subscribed when the first such call is made, so that
  // undici publishes nothing for the request bodies of every other call.
  const bodyChunkSent: ChannelHandlers = {
    "undici:request:bodyChunkSent": on<{ request: object; chunk: unknown }>(({ request, chunk }) => {
      const exchange = exchanges.get(request);
      if (exchange === undefined) return;
      if (exchange.channelRequestChunks++ === 0) publishesChunks.add(Object.getPrototypeOf(request) as object);
      if (exchange.observer.wantsRequestBody) {
        const bytes = asBytes(chunk);
        if (bytes !== undefined) exchange.observer.requestBody(bytes);
      }
    }),
  };
  let unsubscribeBodyChunkSent: (() => void) | undefined;

  // The per-request channels are subscribed only while Mistral calls are about: subscribing alone
  // makes undici build and publish a message for the headers, every body chunk and the end of EVERY
  // request, Mistral's or not. They are subscribed when a matched request is created (before
  // undici publishes anything else for it) and given up at the first other request created while
  // no matched one is in flight, so an app that calls only Mistral never churns, and the rest of
  // an app's traffic publishes nothing for us.
  let inFlight = 0;
  let unsubscribeExchanges: (() => void) | undefined;
  const finished = (request: object): Exchange | undefined => {
    const exchange = exchanges.get(request);
    if (exchange === undefined) return undefined;
    exchanges.delete(request);
    inFlight--;
    return exchange;
  };
  const exchangeHandlers: ChannelHandlers = {
    "undici:request:headers": on<{ request: object; response: { statusCode?: unknown; headers?: unknown } }>(
      ({ request, response }) => {
        exchanges.get(request)?.observer.responseStart(responseHead(response));
      },
    ),
    "undici:request:bodyChunkReceived": on<{ request: object; chunk: unknown }>(({ request, chunk }) => {
      const exchange = exchanges.get(request);
      if (exchange === undefined) return;
      if (exchange.channelResponseChunks++ === 0) publishesChunks.add(Object.getPrototypeOf(request) as object);
      const bytes = asBytes(chunk);
      if (bytes !== undefined) exchange.observer.responseData(bytes);
    }),
    "undici:request:trailers": on<{ request: object }>(({ request }) => {
      finished(request)?.observer.responseEnd();
    }),
    "undici:request:error": on<{ request: object; error: unknown }>(({ request, error }) => {
      finished(request)?.observer.responseError(error);
    }),
  };

  const handlers: ChannelHandlers = {
    "undici:request:create": on<{ request: UndiciRequest }>(({ request }) => {
      const observer = createObserver(String(request.origin), String(request.path), String(request.method));
      if (observer === undefined) {
        if (inFlight === 0 && unsubscribeExchanges !== undefined) {
          unsubscribeExchanges();
          unsubscribeExchanges = undefined;
        }
        return;
      }
      const exchange: Exchange = { observer, channelResponseChunks: 0, channelRequestChunks: 0 };
      exchanges.set(request, exchange);
      inFlight++;
      unsubscribeExchanges ??= subscribeAll(exchangeHandlers, onInternalError);
      // Subscribed before the body is sent: undici publishes `create` when the request is made.
      if (observer.wantsRequestBody) unsubscribeBodyChunkSent ??= subscribeAll(bodyChunkSent, onInternalError);
      if (publishesChunks.has(Object.getPrototypeOf(request) as object)) return;
      wrapChunkMethod(request, "onData", exchange, onInternalError);
      if (observer.wantsRequestBody) wrapChunkMethod(request, "onBodySent", exchange, onInternalError);
    }),
  };

  const unsubscribe = subscribeAll(handlers, onInternalError);
  return () => {
    unsubscribe();
    unsubscribeExchanges?.();
    unsubscribeBodyChunkSent?.();
  };
}

/**
 * Wraps one method of this request instance only (never the class), forwarding every call
 * unchanged, same `this`, same arguments, same return value (false means backpressure).
 */
function wrapChunkMethod(
  request: UndiciRequest,
  name: "onData" | "onBodySent",
  exchange: Exchange,
  onInternalError: (error: unknown) => void,
): void {
  const original = request[name];
  if (typeof original !== "function") return;
  const response = name === "onData";
  request[name] = function (this: unknown): unknown {
    const before = response ? exchange.channelResponseChunks : exchange.channelRequestChunks;
    try {
      // `arguments` rather than a rest parameter: no array per chunk.
      return Reflect.apply(original, this, arguments);
    } finally {
      const after = response ? exchange.channelResponseChunks : exchange.channelRequestChunks;
      // The channel reported this chunk during the call already (undici >= 7.11): do not count it twice.
      if (after === before) {
        try {
          const bytes = asBytes(arguments[0]);
          if (bytes !== undefined) {
            if (response) exchange.observer.responseData(bytes);
            else exchange.observer.requestBody(bytes);
          }
        } catch (error) {
          onInternalError(error);
        }
      }
    }
  };
}

function asBytes(chunk: unknown): Uint8Array | undefined {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return Buffer.from(chunk);
  return undefined;
}

function responseHead(response: { statusCode?: unknown; headers?: unknown }): ResponseHead {
  let contentType: string | undefined;
  let contentEncoding: string | undefined;
  const headers = response.headers;
  if (Array.isArray(headers)) {
    // Raw pairs: [name, value, name, value, ...] as Buffers (or strings).
    for (let i = 0; i + 1 < headers.length; i += 2) {
      // Only two names matter: skip the others without converting them to strings.
      const length = (headers[i] as { length?: number }).length;
      if (length !== 12 && length !== 16) continue;
      const name = String(headers[i]).toLowerCase();
      if (name === "content-type") contentType = String(headers[i + 1]);
      else if (name === "content-encoding") {
        const value = String(headers[i + 1]);
        contentEncoding = contentEncoding === undefined ? value : `${contentEncoding}, ${value}`;
      }
    }
  } else if (typeof headers === "object" && headers !== null) {
    for (const [key, value] of Object.entries(headers)) {
      const name = key.toLowerCase();
      if (name === "content-type") contentType = String(value);
      else if (name === "content-encoding") contentEncoding = Array.isArray(value) ? value.join(", ") : String(value);
    }
  }
  return { status: Number(response.statusCode), contentType, contentEncoding };
}
