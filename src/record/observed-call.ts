import type { MatchedCall } from "../endpoints.js";
import type { ExchangeObserver, ResponseHead } from "../taps/exchange.js";
import { BodyTooLargeError, parseContentEncoding, type Coding } from "../decode/content-encoding.js";
import { createStreamDecoder, type StreamDecoder } from "../decode/stream-decoder.js";
import type { Extraction } from "../extract/counts.js";
import { extractFromJsonChunks, firstNonSpaceByte, modelFromRequestBody } from "../extract/json.js";
import { SseUsageExtractor, extractFromSse } from "../extract/sse.js";
import type { CallUsage } from "./usage-event.js";

export interface Limits {
  /** Largest response body kept for parsing (JSON, or a compressed stream), raw or decoded. */
  readonly maxBodyBytes: number;
  /** Largest single stream event. */
  readonly maxEventBytes: number;
  /** Largest request body kept to find its `model`. */
  readonly maxRequestBytes: number;
}

export interface CallDeps {
  record(usage: CallUsage): void;
  warn(message: string): void;
  readonly limits: Limits;
  /**
   * Compressed streams still open whose decoder can only decode them whole (a Node without the
   * synchronous handle interface): they are finished from what has arrived when the process exits.
   */
  readonly openStreams: Set<ObservedCall>;
}

type BodyKind = "json" | "sse" | "sniff";

/**
 * Turns one observed Mistral call into at most one usage record.
 *
 * Event streams are parsed as they arrive, so the row is recorded the moment the usage event is
 * complete (the official SDK cancels right after `[DONE]`, openai aborts when a loop breaks, and a
 * process may be ended by a signal or `worker.terminate()` right after the app saw the usage).
 * Compressed bodies are decoded chunk by chunk, synchronously, on their way to the same parser
 * (decode/stream-decoder.ts). JSON bodies are collected, bounded, and parsed when they end.
 */
export class ObservedCall implements ExchangeObserver {
  /** Which endpoint, on which server. */
  readonly #call: MatchedCall;
  /** Names the call in warnings; built only when there is one to give. */
  readonly #describe: () => string;
  readonly #deps: CallDeps;
  #state: "headers" | "live-sse" | "collect" | "sniff" | "done" = "headers";
  #status = 0;
  #kind: BodyKind = "sniff";
  #codings: readonly Coding[] = [];
  /** Undoes the content codings; undefined for an identity body. */
  #decoder: StreamDecoder | undefined;
  /** A coding we cannot decode; the body is read as it came, as undici hands it to the app. */
  #unknownEncoding: string | undefined;
  #chunks: Buffer[] = [];
  #size = 0;
  #sse: SseUsageExtractor | undefined;
  #requestChunks: Buffer[] | undefined;
  #requestSize = 0;
  #recorded = false;

  constructor(call: MatchedCall, describe: () => string, deps: CallDeps) {
    this.#call = call;
    this.#describe = describe;
    this.#deps = deps;
    if (call.endpoint.needsRequestModel) this.#requestChunks = [];
  }

  get wantsRequestBody(): boolean {
    return this.#requestChunks !== undefined;
  }

  requestBody(chunk: Uint8Array): void {
    if (this.#requestChunks === undefined) return;
    this.#requestSize += chunk.byteLength;
    if (this.#requestSize > this.#deps.limits.maxRequestBytes) {
      this.#requestChunks = undefined;
      return;
    }
    // Copy: the caller may reuse the buffer once it has been written to the socket.
    this.#requestChunks.push(Buffer.from(chunk));
  }

  responseStart(head: ResponseHead): void {
    if (this.#state !== "headers") return;
    this.#status = head.status;
    if (head.status < 200 || head.status > 299) return this.#end();
    const encoding = parseContentEncoding(head.contentEncoding);
    if (encoding.ok) {
      this.#codings = encoding.codings;
    } else if (encoding.reason === "unknown") {
      // undici skips every coding once one is unknown, and node:http clients pass such a body on
      // as it came (or fail): the app can only have read usage from the bytes as they are.
      this.#unknownEncoding = encoding.unsupported;
    } else {
      this.#deps.warn(`${this.#describe()}: cannot decode content-encoding "${encoding.unsupported}"; no row written`);
      return this.#end();
    }
    this.#kind = bodyKind(head.contentType);
    if (this.#codings.length > 0) {
      this.#decoder = createStreamDecoder(this.#codings, this.#deps.limits.maxBodyBytes);
      // Only a body decoded whole at its end has anything left to record when the process exits.
      if (!this.#decoder.incremental && this.#kind !== "json") this.#deps.openStreams.add(this);
    }
    if (this.#kind === "sse") this.#startLiveSse();
    else this.#state = this.#kind === "json" ? "collect" : "sniff";
  }

  responseData(chunk: Uint8Array): void {
    if (this.#decoder === undefined) return this.#take(chunk);
    if (this.#state === "done" || this.#state === "headers") return;
    let decoded: Buffer[];
    try {
      decoded = this.#decoder.push(chunk);
    } catch (error) {
      return this.#decodingFailed(error, true);
    }
    this.#takeAll(decoded);
  }

  responseEnd(): void {
    if (this.#decoder !== undefined && !this.#takeRest(true)) return;
    if (this.#state === "live-sse") this.#conclude(this.#sse!.finish(), true);
    else if (this.#state === "collect" || this.#state === "sniff") this.#concludeCollected(true);
  }

  responseError(error: unknown): void {
    if (this.#state === "done" || this.#state === "headers") return this.#end();
    // A body decoded whole may hold its usage already (a stream cancelled right after [DONE]).
    this.#finishWholeBody();
    if (!this.#recorded && isConnectionLoss(error)) {
      this.#deps.warn(`${this.#describe()}: the connection closed before the response was complete; no row written`);
    }
    // Cancelled or aborted by the app before the usage arrived: not a problem, nothing to say.
    this.#end();
  }

  /** The process is exiting with this stream still open: record what has arrived. */
  finishAtExit(): void {
    this.#finishWholeBody();
  }

  /** Decodes what the whole-body fallback decoder holds of a stream cut short, and records its usage. */
  #finishWholeBody(): void {
    if (this.#decoder === undefined || this.#decoder.incremental || (this.#state !== "live-sse" && this.#state !== "sniff")) return;
    if (!this.#takeRest(false)) return;
    if (this.#state === "live-sse") this.#conclude(this.#sse!.finish(), false);
    else this.#end();
  }

  /** Feeds what the decoder still holds; false when the call is over (decoding failed, or recorded). */
  #takeRest(complete: boolean): boolean {
    if (this.#state === "done" || this.#state === "headers") return false;
    let decoded: Buffer[];
    try {
      decoded = this.#decoder!.end();
    } catch (error) {
      this.#decodingFailed(error, complete);
      return false;
    }
    this.#takeAll(decoded);
    return this.#isOpen();
  }

  /** A method rather than a test of #state: TypeScript would keep its narrowing across calls. */
  #isOpen(): boolean {
    return this.#state !== "done";
  }

  #takeAll(decoded: readonly Buffer[]): void {
    for (const piece of decoded) {
      this.#take(piece);
      if (this.#state === "done") return;
    }
  }

  /** Bytes as the app reads them (decoded). */
  #take(chunk: Uint8Array): void {
    if (this.#state === "sniff") {
      const sniffed = sniffKind([chunk]);
      if (sniffed === undefined) return this.#collect(chunk);
      this.#kind = sniffed;
      if (this.#kind === "sse") this.#startLiveSse();
      else this.#state = "collect";
    }
    if (this.#state === "live-sse") {
      const sse = this.#sse!;
      sse.push(chunk);
      if (sse.result !== undefined) this.#conclude(sse.result, true);
    } else if (this.#state === "collect") {
      this.#collect(chunk);
    }
  }

  #decodingFailed(error: unknown, complete: boolean): void {
    const reason = error instanceof BodyTooLargeError ? error.message : `corrupt ${this.#codings.join(", ")} data`;
    if (complete) this.#deps.warn(`${this.#describe()}: cannot decode the response body (${reason}); no row written`);
    this.#end();
  }

  #startLiveSse(): void {
    this.#state = "live-sse";
    this.#sse = new SseUsageExtractor(this.#deps.limits.maxEventBytes);
    for (const chunk of this.#chunks) this.#sse.push(chunk);
    this.#chunks = [];
  }

  #collect(chunk: Uint8Array): void {
    this.#size += chunk.byteLength;
    if (this.#size > this.#deps.limits.maxBodyBytes) {
      // Non-streamed speech is large audio and never carries usage: nothing worth a warning.
      if (this.#call.endpoint.usageExpected) this.#deps.warn(`${this.#describe()}: response body larger than ${this.#deps.limits.maxBodyBytes} bytes; not parsed, no row written`);
      return this.#end();
    }
    this.#chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  }

  /** Parses a body collected whole (JSON, or one too short to tell). */
  #concludeCollected(complete: boolean): void {
    const chunks = this.#chunks;
    this.#chunks = [];
    const kind = this.#kind === "sniff" ? (sniffKind(chunks) ?? "sse") : this.#kind;
    const extraction =
      kind === "json"
        ? extractFromJsonChunks(chunks, this.#size)
        : extractFromSse(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), this.#deps.limits.maxEventBytes);
    this.#conclude(extraction, complete);
  }

  #conclude(extraction: Extraction, warnIfMissing: boolean): void {
    this.#end();
    switch (extraction.kind) {
      case "usage":
        this.#recorded = true;
        this.#deps.record({
          endpoint: this.#call.endpoint.kind,
          server: this.#call.server,
          requestModel: this.#requestModel(),
          responseModel: extraction.model,
          counts: extraction.counts,
        });
        return;
      case "malformed":
        this.#deps.warn(
          this.#unknownEncoding !== undefined
            ? this.#unknownEncodingWarning()
            : `${this.#describe()}: ${this.#status} response ignored, ${extraction.reason}; no row written`,
        );
        return;
      case "none":
        if (warnIfMissing && this.#call.endpoint.usageExpected) {
          this.#deps.warn(
            this.#unknownEncoding !== undefined
              ? this.#unknownEncodingWarning()
              : `${this.#describe()}: ${this.#status} response has no usage; no row written`,
          );
        }
        return;
    }
  }

  #unknownEncodingWarning(): string {
    return `${this.#describe()}: cannot decode content-encoding "${this.#unknownEncoding}", and the body as it came holds no usage; no row written`;
  }

  #requestModel(): string | undefined {
    const chunks = this.#requestChunks;
    if (chunks === undefined || chunks.length === 0) return undefined;
    return modelFromRequestBody(Buffer.concat(chunks).toString("utf8"));
  }

  #end(): void {
    this.#state = "done";
    this.#chunks = [];
    this.#sse = undefined;
    this.#decoder?.close();
    this.#deps.openStreams.delete(this);
  }
}

function bodyKind(contentType: string | undefined): BodyKind {
  if (contentType === undefined) return "sniff";
  const type = contentType.toLowerCase();
  if (type.includes("text/event-stream")) return "sse";
  if (type.includes("json")) return "json";
  return "sniff";
}

/** A body without a telling content type: JSON if it opens like JSON, else an event stream. */
function sniffKind(chunks: readonly Uint8Array[]): "json" | "sse" | undefined {
  const first = firstNonSpaceByte(chunks);
  if (first === undefined) return undefined;
  return first === 0x7b /* { */ || first === 0x5b /* [ */ ? "json" : "sse";
}

/** The server or network cut the response short (as opposed to the app cancelling or aborting it). */
function isConnectionLoss(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return (
    code === "UND_ERR_SOCKET" ||
    code === "ECONNRESET" ||
    code === "UND_ERR_RES_CONTENT_LENGTH_MISMATCH" ||
    // node:http2: the server reset the stream, or the session went away under it.
    code === "ERR_HTTP2_STREAM_ERROR" ||
    code === "ERR_HTTP2_SESSION_ERROR"
  );
}
