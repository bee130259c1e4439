import type { ClientHttp2Stream, IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { on, subscribeAll, type ChannelHandlers } from "./channels.js";
import type { ExchangeObserver, ObserverFactory } from "./exchange.js";
import { wrapBodyWrites, wrapPush } from "./node-http.js";

/**
 * Observes HTTP/2 requests made with node:http2 (by hand, `got` with `http2: true` through
 * http2-wrapper, `superagent().http2()`) through Node's `http2.client.stream.*` diagnostics
 * channels (2025: Node 24, backported to 22; checked on 22.23, 24.22, 26.12). Node 20 has none, so
 * there this tap subscribes to channels that never fire and HTTP/2 calls get no row.
 *
 * `http2.client.stream.created` fires when `session.request()` returns the stream, with the request
 * headers (`:method`, `:path`, `:scheme`, `:authority`): before any body byte is written and before
 * any response byte arrives. A matched stream gets the same per-instance wrappers as a node:http
 * response: `push` (every response body chunk, then `null` at the end) and, for the endpoints that
 * need it, `write`/`end` (the request body, for the model fallback). `http2.client.stream.finish`
 * fires when the response headers have been parsed, before the app's `'response'` event.
 * The bytes are still content-encoded: these clients decompress after `push`.
 *
 * A stream is one exchange of one client stack: http2-wrapper and superagent do not go through
 * node:http's ClientRequest, so no call is seen by two taps.
 */

interface Exchange {
  readonly observer: ExchangeObserver;
  ended: boolean;
  /** What `http2.client.stream.error` reported, if anything: the server reset the stream, or the session failed. */
  error: unknown;
}

export function tapNodeHttp2(createObserver: ObserverFactory, onInternalError: (error: unknown) => void): () => void {
  const exchanges = new WeakMap<object, Exchange>();

  const handlers: ChannelHandlers = {
    "http2.client.stream.created": on<{ stream: ClientHttp2Stream; headers: OutgoingHttpHeaders | undefined }>(({ stream, headers }) => {
      if (exchanges.has(stream)) return;
      const sent = headers ?? stream.sentHeaders;
      if (sent === undefined) return;
      const method = text(sent[":method"]);
      const path = text(sent[":path"]);
      const authority = text(sent[":authority"]);
      // Streams the server pushes are announced here too, with the promised request: never a POST.
      if (method === undefined || path === undefined || authority === undefined) return;
      const observer = createObserver(`${text(sent[":scheme"]) ?? "https"}://${authority}`, path, method);
      if (observer === undefined) return;
      const exchange: Exchange = { observer, ended: false, error: undefined };
      exchanges.set(stream, exchange);
      // node:http2 also pushes null when a stream is reset (closed by the app, or by the server):
      // only a stream that ended without a reset code other than NO_ERROR is complete.
      wrapPush(stream, exchange, onInternalError, () => resetReason(stream, exchange));
      if (observer.wantsRequestBody) wrapBodyWrites(stream, observer, onInternalError);
      stream.once("close", () => {
        exchanges.delete(stream);
        if (exchange.ended) return;
        try {
          // The app closed or destroyed the stream (no error then), or the server or network cut it.
          observer.responseError(exchange.error);
        } catch (error) {
          onInternalError(error);
        }
      });
    }),
    "http2.client.stream.finish": on<{ stream: object; headers: IncomingHttpHeaders }>(({ stream, headers }) => {
      exchanges.get(stream)?.observer.responseStart({
        status: Number(headers[":status"]),
        contentType: text(headers["content-type"]),
        contentEncoding: text(headers["content-encoding"]),
      });
    }),
    "http2.client.stream.error": on<{ stream: object; error: unknown }>(({ stream, error }) => {
      const exchange = exchanges.get(stream);
      if (exchange !== undefined) exchange.error = error;
    }),
  };

  return subscribeAll(handlers, onInternalError);
}

const NGHTTP2_NO_ERROR = 0;
const NGHTTP2_CANCEL = 8;

/** Undefined for a stream that ended normally; else what to report (nothing for a cancel). */
function resetReason(stream: ClientHttp2Stream, exchange: Exchange): unknown {
  const code = stream.rstCode;
  if (code === undefined || code === NGHTTP2_NO_ERROR) return undefined;
  if (code === NGHTTP2_CANCEL) return CANCELLED;
  return exchange.error ?? { code: "ERR_HTTP2_STREAM_ERROR", rstCode: code };
}

/** The app (or, rarely, the server) cancelled the stream: no warning. */
const CANCELLED = Object.freeze({ name: "AbortError", code: "NGHTTP2_CANCEL" });

function text(value: unknown): string | undefined {
  if (Array.isArray(value)) return value.join(", ");
  return value === undefined || value === null ? undefined : String(value);
}
