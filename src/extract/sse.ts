import { createParser, type EventSourceMessage, type EventSourceParser } from "eventsource-parser";
import { malformed, modelOf, NO_USAGE, readUsage, type Extraction } from "./counts.js";

/** Named events that carry the usage of conversation, transcription and speech streams. */
const USAGE_EVENTS: ReadonlySet<string> = new Set([
  "conversation.response.done",
  "transcription.done",
  "speech.audio.done",
]);

/**
 * Finds the usage in a server-sent event stream, fed in arbitrary chunks (events and multi-byte
 * characters split anywhere, CRLF or LF). Data-only streams (chat, fim, agents) carry usage on
 * the last content chunk before `data: [DONE]`; named-event streams on their `*.done` event.
 *
 * Keeps only the event being parsed: memory is bounded by `maxEventBytes`. Pure: no I/O.
 */
export class SseUsageExtractor {
  readonly #decoder = new TextDecoder("utf-8");
  readonly #parser: EventSourceParser;
  readonly #maxEventBytes: number;
  #bytesSinceEvent = 0;
  #endsWithCr = false;
  /** The parser and the decoder hold nothing: everything pushed so far ended with a blank line. */
  #atEventBoundary = false;
  #model: string | undefined;
  #result: Extraction | undefined;

  constructor(maxEventBytes: number) {
    this.#maxEventBytes = maxEventBytes;
    this.#parser = createParser({ onEvent: (event) => this.#onEvent(event) });
  }

  /** Set once the stream has told all it will: usage found, `[DONE]` seen, or malformed. */
  get result(): Extraction | undefined {
    return this.#result;
  }

  push(bytes: Uint8Array): void {
    if (this.#result !== undefined) return;
    const wholeEvents = endsWithBlankLine(bytes);
    if (wholeEvents && this.#atEventBoundary && !mayMatter(bytes, this.#model === undefined)) {
      // Whole events that would all be ignored below: decoding and parsing them would change
      // nothing, and would be most of what a long stream costs.
      this.#bytesSinceEvent = 0;
      return;
    }
    this.#atEventBoundary = wholeEvents;
    this.#bytesSinceEvent += bytes.byteLength;
    const text = this.#decoder.decode(bytes, { stream: true });
    if (text === "") return;
    this.#endsWithCr = text.endsWith("\r");
    this.#parser.feed(text);
    if (this.#result === undefined && this.#bytesSinceEvent > this.#maxEventBytes) {
      this.#result = malformed(`a stream event is larger than ${this.#maxEventBytes} bytes`);
    }
  }

  /** The stream ended, or was cut off: an event without its closing blank line does not count. */
  finish(): Extraction {
    // A final CR may be a whole line ending (CR-only streams) that the parser holds back in case an
    // LF follows; at the end nothing follows. An LF after it completes the line, never more.
    if (this.#result === undefined && this.#endsWithCr) this.#parser.feed("\n");
    this.#result ??= NO_USAGE;
    return this.#result;
  }

  #onEvent(event: EventSourceMessage): void {
    this.#bytesSinceEvent = 0;
    if (this.#result !== undefined) return;
    const data = event.data;
    if (data === "[DONE]") {
      this.#result = NO_USAGE;
      return;
    }
    const named = event.event !== undefined && event.event !== "message";
    const mayCarryUsage = named ? USAGE_EVENTS.has(event.event!) : true;
    // Parsing every chunk of a long stream would cost more than the rest of the observer together;
    // only events that can matter are parsed.
    const hasUsage = mayCarryUsage && data.includes('"usage"');
    if (!hasUsage && (this.#model !== undefined || !data.includes('"model"'))) return;

    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      if (hasUsage) this.#result = malformed("a stream event that mentions usage is not valid JSON");
      return;
    }
    if (typeof parsed !== "object" || parsed === null) return;
    const fields = parsed as Record<string, unknown>;
    const model = modelOf(fields["model"]);
    if (!hasUsage) {
      this.#model = model;
      return;
    }
    const extraction = readUsage(fields["usage"], model ?? this.#model);
    this.#model ??= model;
    if (extraction.kind !== "none") this.#result = extraction;
  }
}

/**
 * Whether these bytes can hold an event that #onEvent would not ignore: one that mentions
 * `"usage"`, the `[DONE]` marker, or (while no model is known) `"model"`. These are the substring
 * tests #onEvent makes on each event's data, made once on the raw bytes (the three are ASCII), so a
 * "no" is exact. One pass in plain JS: it costs less than one native search per word.
 */
export function mayMatter(bytes: Uint8Array, wantModel: boolean): boolean {
  for (let i = 0, n = bytes.length; i < n; i++) {
    const byte = bytes[i];
    if (byte === 0x22 /* " */) {
      const next = bytes[i + 1];
      if (next === 0x75 && follows(bytes, i + 2, USAGE_TAIL)) return true;
      if (wantModel && next === 0x6d && follows(bytes, i + 2, MODEL_TAIL)) return true;
    } else if (byte === 0x5b /* [ */ && bytes[i + 1] === 0x44 && follows(bytes, i + 2, DONE_TAIL)) {
      return true;
    }
  }
  return false;
}

const USAGE_TAIL = [0x73, 0x61, 0x67, 0x65, 0x22]; // sage"
const MODEL_TAIL = [0x6f, 0x64, 0x65, 0x6c, 0x22]; // odel"
const DONE_TAIL = [0x4f, 0x4e, 0x45, 0x5d]; // ONE]

function follows(bytes: Uint8Array, at: number, tail: readonly number[]): boolean {
  for (let k = 0; k < tail.length; k++) if (bytes[at + k] !== tail[k]) return false;
  return true;
}

/**
 * Whether the bytes end with an empty line (LF LF, or CR LF / LF CR LF forms ending in LF): the
 * last event in them is complete, so nothing is left over for the next chunk. Conservative: an
 * ending split across chunks, or a CR-only one, says no.
 */
function endsWithBlankLine(bytes: Uint8Array): boolean {
  const n = bytes.length;
  if (n < 2 || bytes[n - 1] !== 0x0a) return false;
  const before = bytes[n - 2];
  return before === 0x0a || (before === 0x0d && n >= 3 && bytes[n - 3] === 0x0a);
}

/** Runs a whole decoded stream through the extractor (compressed streams are decoded at the end). */
export function extractFromSse(bytes: Uint8Array, maxEventBytes: number): Extraction {
  const extractor = new SseUsageExtractor(maxEventBytes);
  extractor.push(bytes);
  return extractor.result ?? extractor.finish();
}
