import assert from "node:assert/strict";
import { describe, test } from "node:test";
import zlib from "node:zlib";
import { endpointForPath, type Endpoint } from "../../../src/endpoints.js";
import { ObservedCall, type CallDeps, type Limits } from "../../../src/record/observed-call.js";
import { setNativeHandlesUsableForTests } from "../../../src/decode/stream-decoder.js";
import { loggedModel, UNKNOWN_MODEL } from "../../../src/record/usage-event.js";
import type { UsageCounts } from "../../../src/extract/counts.js";
import type { ResponseHead } from "../../../src/taps/exchange.js";
import {
  BINARY_GARBAGE,
  CHAT_JSON,
  CHAT_JSON_USAGE,
  CHAT_SSE,
  CHAT_SSE_EVENTS,
  CHAT_SSE_UNICODE_EVENTS,
  CHAT_USAGE,
  COMPRESS,
  type Compression,
  CONVERSATION_JSON,
  CONVERSATION_JSON_NO_MODEL,
  CONVERSATION_SSE,
  CONVERSATION_SSE_EVENTS,
  CONVERSATION_USAGE,
  EMBEDDINGS_JSON,
  hasZstd,
  MODERATION_JSON,
  MODERATION_JSON_NO_USAGE,
  RATE_LIMIT_JSON,
  SPEECH_JSON,
  SPEECH_REQUEST,
  SPEECH_SSE,
  SPEECH_SSE_EVENTS,
  SPEECH_USAGE,
  sseStream,
  TRANSCRIPTION_JSON,
  TRANSCRIPTION_SSE,
  TRANSCRIPTION_USAGE,
  utf8,
} from "../fixtures.js";

// --- harness --------------------------------------------------------------------------------------

const LIMITS: Limits = { maxBodyBytes: 1 << 20, maxEventBytes: 1 << 16, maxRequestBytes: 1 << 16 };

const JSON_TYPE = "application/json";
const SSE_TYPE = "text/event-stream";

interface Harness {
  readonly call: ObservedCall;
  readonly records: UsageRecord[];
  readonly warnings: string[];
  readonly openStreams: Set<ObservedCall>;
}

/** What these tests compare: the CSV's model and the counts of each recorded call. */
interface UsageRecord {
  readonly model: string;
  readonly counts: UsageCounts;
}

function endpoint(path: string): Endpoint {
  const found = endpointForPath(path);
  assert.ok(found, `no endpoint for ${path}`);
  return found;
}

/** An ObservedCall wired to fake deps, as a tap would create it. */
function observe(path = "/v1/chat/completions", limits: Partial<Limits> = {}): Harness {
  const records: UsageRecord[] = [];
  const warnings: string[] = [];
  const openStreams = new Set<ObservedCall>();
  const deps: CallDeps = {
    record: (usage) => records.push({ model: loggedModel(usage), counts: usage.counts }),
    warn: (message) => warnings.push(message),
    limits: { ...LIMITS, ...limits },
    openStreams,
  };
  return { call: new ObservedCall({ endpoint: endpoint(path), server: { address: "api.mistral.ai", port: 443 } }, () => `POST ${path}`, deps), records, warnings, openStreams };
}

function head(contentType: string | undefined, contentEncoding?: string, status = 200): ResponseHead {
  return { status, contentType, contentEncoding };
}

/** Splits bytes into chunks of at most `size` bytes (the last may be shorter). */
function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

/** A whole exchange: head, the body in chunks, then a normal end (or the given error). */
function respond(h: Harness, responseHead: ResponseHead, body: string | Uint8Array | readonly Uint8Array[], ending: "end" | { error: unknown } = "end"): void {
  const chunks = typeof body === "string" ? chunksOf(utf8(body), 97) : body instanceof Uint8Array ? chunksOf(body, 97) : body;
  h.call.responseStart(responseHead);
  for (const chunk of chunks) h.call.responseData(chunk);
  if (ending === "end") h.call.responseEnd();
  else h.call.responseError(ending.error);
}

const record = (model: string, counts: { promptTokens: number; completionTokens: number; totalTokens: number }): UsageRecord => ({
  model,
  counts: { ...counts },
});

/** What an app-side cancel or abort looks like (fetch AbortController, ReadableStream.cancel). */
const ABORTS: Array<[string, unknown]> = [
  ["DOMException AbortError", new DOMException("This operation was aborted", "AbortError")],
  ["plain AbortError-like object", { name: "AbortError", message: "The operation was aborted." }],
  ["undici RequestAbortedError", Object.assign(new Error("Request aborted"), { name: "AbortError", code: "UND_ERR_ABORTED" })],
  ["cancel reason string", "done"],
  ["undefined", undefined],
];

/** What the server or network cutting the response looks like. */
const connectionLoss = (code = "UND_ERR_SOCKET") => Object.assign(new Error("other side closed"), { code });

// Compression as a server would apply it: a finished body, or a stream flushed but not finished
// (what has arrived when the app cancels mid-stream).
type Codec = {
  header: string;
  finished: (data: Buffer) => Buffer;
  flushed: (data: Buffer) => Buffer;
  /** One compressed stream, flushed after each segment, as a server streams events: the bytes of each. */
  flushedSegments: (segments: readonly Buffer[]) => Promise<Buffer[]>;
  skip: string | false;
};
const codec = (header: string, { whole, flushed, segments }: Compression, skip: string | false = false): Codec => ({
  header,
  finished: whole,
  flushed,
  flushedSegments: segments,
  skip,
});
const CODECS: Codec[] = [
  codec("gzip", COMPRESS.gzip),
  codec("x-gzip", COMPRESS.gzip),
  codec("deflate", COMPRESS.deflate),
  codec("deflate (raw)", COMPRESS.deflateRaw),
  codec("br", COMPRESS.br),
  codec("zstd", COMPRESS.zstd, hasZstd ? false : "this Node has no zstd"),
  {
    header: "gzip, br",
    finished: (d) => zlib.brotliCompressSync(zlib.gzipSync(d)),
    // The outer layer is what is cut short; the inner gzip was flushed too.
    flushed: (d) =>
      zlib.brotliCompressSync(zlib.gzipSync(d, { finishFlush: zlib.constants.Z_SYNC_FLUSH }), {
        finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
      }),
    flushedSegments: async (segments) => COMPRESS.br.segments(await COMPRESS.gzip.segments(segments)),
    skip: false,
  },
];
const contentEncoding = (codec: Codec) => codec.header.replace(" (raw)", "");

const gzip = CODECS[0]!;
const br = CODECS[4]!;

// --- JSON responses -------------------------------------------------------------------------------

describe("JSON responses", () => {
  test("one record for a successful chat completion", () => {
    const h = observe();
    respond(h, head(JSON_TYPE), CHAT_JSON);
    assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
    assert.deepEqual(h.warnings, []);
    assert.equal(h.openStreams.size, 0);
  });

  test("nothing is recorded before the response ends", () => {
    const h = observe();
    h.call.responseStart(head(JSON_TYPE));
    h.call.responseData(utf8(CHAT_JSON));
    assert.equal(h.records.length, 0);
    h.call.responseEnd();
    assert.equal(h.records.length, 1);
  });

  test("split at every byte boundary", () => {
    const bytes = utf8(CHAT_JSON);
    for (let at = 0; at <= bytes.length; at++) {
      const h = observe();
      respond(h, head(JSON_TYPE), [bytes.subarray(0, at), bytes.subarray(at)]);
      assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)], `split at ${at}`);
      assert.deepEqual(h.warnings, []);
    }
  });

  test("Uint8Array chunks (not Buffers) are collected too", () => {
    const h = observe();
    const bytes = utf8(CHAT_JSON);
    respond(h, head(JSON_TYPE), chunksOf(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), 10).map((c) => new Uint8Array(c)));
    assert.equal(h.records.length, 1);
  });

  const bodies: Array<[string, string, string, UsageRecord]> = [
    ["/v1/embeddings", EMBEDDINGS_JSON, JSON_TYPE, record("mistral-embed", { promptTokens: 6, completionTokens: 0, totalTokens: 6 })],
    ["/v1/moderations", MODERATION_JSON, JSON_TYPE, record("mistral-moderation-2411", { promptTokens: 38, completionTokens: 0, totalTokens: 127 })],
    ["/v1/chat/moderations", MODERATION_JSON, "application/json; charset=utf-8", record("mistral-moderation-2411", { promptTokens: 38, completionTokens: 0, totalTokens: 127 })],
    ["/v1/audio/transcriptions", TRANSCRIPTION_JSON, "APPLICATION/JSON", record("voxtral-mini-2507", { promptTokens: 4, completionTokens: 634, totalTokens: 3263 })],
    ["/v1/conversations", CONVERSATION_JSON, JSON_TYPE, record("mistral-medium-latest", CONVERSATION_USAGE)],
    ["/v1/agents/completions", CHAT_JSON, JSON_TYPE, record("mistral-small-latest", CHAT_JSON_USAGE)],
    ["/v1/fim/completions", CHAT_JSON, "application/problem+json", record("mistral-small-latest", CHAT_JSON_USAGE)],
  ];
  for (const [path, body, contentType, expected] of bodies) {
    test(`${path} (${contentType})`, () => {
      const h = observe(path);
      respond(h, head(contentType), body);
      assert.deepEqual(h.records, [expected]);
      assert.deepEqual(h.warnings, []);
    });
  }

  describe("without a JSON content-type, the body is sniffed", () => {
    const cases: Array<[string, string | undefined, readonly string[]]> = [
      ["no content-type", undefined, [CHAT_JSON]],
      ["text/plain", "text/plain", [CHAT_JSON]],
      ["application/octet-stream", "application/octet-stream", [CHAT_JSON]],
      ["leading whitespace in its own chunk", undefined, ["\r\n  ", "\n", CHAT_JSON]],
      ["leading whitespace in the same chunk", undefined, [`\n\t ${CHAT_JSON}`]],
    ];
    for (const [name, contentType, chunks] of cases) {
      test(name, () => {
        const h = observe();
        respond(h, head(contentType), chunks.map(utf8));
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
        assert.deepEqual(h.warnings, []);
      });
    }

    test("an empty body without content-type: no usage warning, no record", () => {
      const h = observe();
      respond(h, head(undefined), []);
      assert.equal(h.records.length, 0);
      assert.equal(h.warnings.length, 1);
      assert.match(h.warnings[0]!, /200 response has no usage; no row written/);
    });
  });

  describe("malformed bodies: no record, one warning", () => {
    const cases: Array<[string, string | Uint8Array, RegExp]> = [
      ["invalid JSON", '{"model":"mistral-small-latest","usage":{prompt_tokens:15}}', /not valid JSON/],
      ["a JSON array", `[${CHAT_JSON}]`, /not a JSON object/],
      ["a JSON string", JSON.stringify(CHAT_JSON), /not a JSON object/],
      ["JSON null", "null", /not a JSON object/],
      ["usage is an array", '{"model":"m","usage":[15,8,23]}', /usage is not an object/],
      ["usage is {}", '{"model":"m","usage":{}}', /neither prompt_tokens nor total_tokens/],
      ["usage with string counts", '{"model":"m","usage":{"prompt_tokens":"15","completion_tokens":"8","total_tokens":"23"}}', /prompt_tokens is "15"/],
      ["usage with a negative count", '{"model":"m","usage":{"prompt_tokens":-15,"completion_tokens":8,"total_tokens":23}}', /prompt_tokens is -15/],
      ["an empty body", "", /the body is empty/],
      ["binary garbage", BINARY_GARBAGE, /not valid JSON/],
      ["a truncated body that ended normally", CHAT_JSON.slice(0, 120), /not valid JSON/],
    ];
    for (const [name, body, reason] of cases) {
      test(name, () => {
        const h = observe();
        respond(h, head(JSON_TYPE), body);
        assert.deepEqual(h.records, []);
        assert.equal(h.warnings.length, 1, h.warnings.join("\n"));
        assert.match(h.warnings[0]!, /^POST \/v1\/chat\/completions: 200 response ignored, /);
        assert.match(h.warnings[0]!, reason);
        assert.match(h.warnings[0]!, /no row written$/);
      });
    }

    test("usage null on an endpoint that always reports usage: a no-usage warning", () => {
      const h = observe();
      respond(h, head(JSON_TYPE), '{"id":"x","model":"mistral-small-latest","usage":null}');
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, ["POST /v1/chat/completions: 200 response has no usage; no row written"]);
    });

    test(
      "a BOM-prefixed JSON body is recorded (fetch's response.json() accepts it)",
      () => {
        for (const contentType of [JSON_TYPE, undefined]) {
          const h = observe();
          respond(h, head(contentType), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), utf8(CHAT_JSON)]));
          assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
          assert.deepEqual(h.warnings, []);
        }
      },
    );
  });

  describe("a complete 2xx without usage", () => {
    const warned: Array<[string, string]> = [
      ["/v1/chat/completions", '{"id":"x","object":"chat.completion","model":"mistral-small-latest","choices":[]}'],
      ["/v1/fim/completions", '{"id":"x","model":"codestral-latest","choices":[]}'],
      ["/v1/agents/completions", '{"id":"x","model":"mistral-large-latest","choices":[]}'],
      ["/v1/embeddings", '{"id":"x","object":"list","model":"mistral-embed","data":[]}'],
      ["/v1/audio/transcriptions", '{"model":"voxtral-mini-2507","text":"hi","segments":[]}'],
      ["/v1/conversations/conv_1", '{"object":"conversation.response","conversation_id":"conv_1","outputs":[]}'],
    ];
    for (const [path, body] of warned) {
      test(`${path}: warns (usage expected)`, () => {
        const h = observe(path);
        respond(h, head(JSON_TYPE), body);
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, [`POST ${path}: 200 response has no usage; no row written`]);
      });
    }

    const silent: Array<[string, string]> = [
      ["/v1/audio/speech", SPEECH_JSON],
      ["/v1/moderations", MODERATION_JSON_NO_USAGE],
      ["/v1/chat/moderations", MODERATION_JSON_NO_USAGE],
      ["/v1/classifications", '{"id":"x","model":"ft:classifier:abc","results":[{"label":{"scores":{"a":0.9}}}]}'],
    ];
    for (const [path, body] of silent) {
      test(`${path}: silent (usage optional)`, () => {
        const h = observe(path);
        respond(h, head(JSON_TYPE), body);
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, []);
      });
    }
  });

  describe("error statuses: no record, no warning", () => {
    for (const status of [100, 101, 301, 304, 400, 401, 403, 404, 422, 429, 500, 502, 503, 504]) {
      test(String(status), () => {
        const h = observe();
        // Even a body with usage in it (a misbehaving gateway) is not counted.
        respond(h, head(JSON_TYPE, undefined, status), status === 429 ? RATE_LIMIT_JSON : CHAT_JSON);
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, []);
      });
    }

    test("an error status with an undecodable content-encoding is not warned about either", () => {
      const h = observe();
      respond(h, head(JSON_TYPE, "compress", 500), BINARY_GARBAGE);
      assert.deepEqual(h.warnings, []);
    });

    test("an error status on a stream", () => {
      const h = observe();
      respond(h, head(SSE_TYPE, undefined, 503), CHAT_SSE);
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, []);
    });
  });

  describe("cut short", () => {
    for (const [name, error] of ABORTS) {
      test(`aborted by the app (${name}): no record, no warning`, () => {
        const h = observe();
        respond(h, head(JSON_TYPE), [utf8(CHAT_JSON.slice(0, 100))], { error });
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, []);
      });
    }

    for (const code of ["UND_ERR_SOCKET", "ECONNRESET", "UND_ERR_RES_CONTENT_LENGTH_MISMATCH"]) {
      test(`connection lost mid-body (${code}): a "connection closed" warning`, () => {
        const h = observe();
        respond(h, head(JSON_TYPE), [utf8(CHAT_JSON.slice(0, 100))], { error: connectionLoss(code) });
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, [
          "POST /v1/chat/completions: the connection closed before the response was complete; no row written",
        ]);
      });
    }

    test("an error before the response started: nothing to say", () => {
      const h = observe();
      h.call.responseError(connectionLoss());
      h.call.responseError(new DOMException("aborted", "AbortError"));
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, []);
    });
  });

  describe("body size limit", () => {
    test("a body over maxBodyBytes: exactly one warning, no record", () => {
      const h = observe("/v1/chat/completions", { maxBodyBytes: 100 });
      respond(h, head(JSON_TYPE), chunksOf(utf8(CHAT_JSON), 30));
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, [
        "POST /v1/chat/completions: response body larger than 100 bytes; not parsed, no row written",
      ]);
    });

    test("a body of exactly maxBodyBytes is parsed", () => {
      const bytes = utf8(CHAT_JSON);
      const h = observe("/v1/chat/completions", { maxBodyBytes: bytes.length });
      respond(h, head(JSON_TYPE), bytes);
      assert.equal(h.records.length, 1);
      assert.deepEqual(h.warnings, []);
    });

    test("a sniffed body over the limit", () => {
      const h = observe("/v1/chat/completions", { maxBodyBytes: 100 });
      respond(h, head(undefined), [utf8("   "), ...chunksOf(utf8(CHAT_JSON), 30)]);
      assert.deepEqual(h.records, []);
      assert.equal(h.warnings.length, 1);
      assert.match(h.warnings[0]!, /larger than 100 bytes/);
    });
  });
});

// --- plain (identity) event streams ---------------------------------------------------------------

describe("identity event streams", () => {
  test("recorded the moment the usage event completes, before [DONE] and responseEnd", () => {
    const h = observe();
    h.call.responseStart(head(SSE_TYPE));
    const [first, second, usageChunk, done] = CHAT_SSE_EVENTS.map((event) => utf8(`${event}\n\n`));
    h.call.responseData(first!);
    h.call.responseData(second!);
    h.call.responseData(usageChunk!.subarray(0, usageChunk!.length - 1));
    assert.equal(h.records.length, 0, "not before the blank line");
    h.call.responseData(usageChunk!.subarray(usageChunk!.length - 1));
    assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
    h.call.responseData(done!);
    h.call.responseEnd();
    assert.equal(h.records.length, 1);
    assert.deepEqual(h.warnings, []);
    assert.equal(h.openStreams.size, 0, "identity streams are never left open");
  });

  test("split at every byte boundary, with multi-byte text and CRLF", () => {
    for (const eol of ["\n", "\r\n"] as const) {
      const bytes = utf8(sseStream(CHAT_SSE_UNICODE_EVENTS, eol));
      for (let at = 0; at <= bytes.length; at++) {
        const h = observe();
        respond(h, head(SSE_TYPE), [bytes.subarray(0, at), bytes.subarray(at)]);
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)], `split at ${at}`);
        assert.deepEqual(h.warnings, []);
      }
    }
  });

  const streams: Array<[string, string, string, UsageRecord]> = [
    ["/v1/chat/completions", "text/event-stream; charset=utf-8", CHAT_SSE, record("mistral-small-latest", CHAT_USAGE)],
    ["/v1/conversations", SSE_TYPE, CONVERSATION_SSE, record("mistral-medium-latest", CONVERSATION_USAGE)],
    ["/v1/conversations/conv_1/restart", SSE_TYPE, CONVERSATION_SSE, record("mistral-medium-latest", CONVERSATION_USAGE)],
    ["/v1/audio/transcriptions", SSE_TYPE, TRANSCRIPTION_SSE, record("voxtral-mini-2507", TRANSCRIPTION_USAGE)],
    ["/v1/chat/completions", "TEXT/EVENT-STREAM", sseStream(CHAT_SSE_EVENTS, "\r\n"), record("mistral-small-latest", CHAT_USAGE)],
  ];
  for (const [path, contentType, body, expected] of streams) {
    test(`${path} (${contentType})`, () => {
      const h = observe(path);
      respond(h, head(contentType), body);
      assert.deepEqual(h.records, [expected]);
      assert.deepEqual(h.warnings, []);
    });
  }

  describe("without a content-type, a stream is sniffed and still read live", () => {
    const cases: Array<[string, readonly string[]]> = [
      ["starting with data:", [CHAT_SSE]],
      ["starting with a comment", [`: ping\n\n${CHAT_SSE}`]],
      ["starting with a whitespace-only chunk", ["\n", CHAT_SSE]],
    ];
    for (const [name, chunks] of cases) {
      test(name, () => {
        const h = observe();
        h.call.responseStart(head(undefined));
        for (const chunk of chunks) h.call.responseData(utf8(chunk));
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)], "recorded before the end");
        // The SDK cancels after [DONE]: still exactly one record.
        h.call.responseError(new DOMException("aborted", "AbortError"));
        assert.equal(h.records.length, 1);
        assert.deepEqual(h.warnings, []);
      });
    }
  });

  describe("cancelled by the app", () => {
    for (const [name, error] of ABORTS) {
      test(`before the usage arrived (${name}): no record, no warning`, () => {
        const h = observe();
        respond(h, head(SSE_TYPE), sseStream(CHAT_SSE_EVENTS.slice(0, 2)), { error });
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, []);
      });
    }

    test("after the usage arrived, before [DONE]: one record", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), sseStream(CHAT_SSE_EVENTS.slice(0, 3)), { error: new DOMException("aborted", "AbortError") });
      assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
      assert.deepEqual(h.warnings, []);
    });

    test("right after [DONE], as the Mistral SDK does: one record", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), CHAT_SSE, { error: "done" });
      assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
      assert.deepEqual(h.warnings, []);
    });

    test("in the middle of the usage event: no record", () => {
      const h = observe();
      const partial = `${sseStream(CHAT_SSE_EVENTS.slice(0, 2))}${CHAT_SSE_EVENTS[2]}\n`;
      respond(h, head(SSE_TYPE), partial, { error: new DOMException("aborted", "AbortError") });
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, []);
    });
  });

  describe("connection lost", () => {
    test("before the usage: a connection-closed warning", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), sseStream(CHAT_SSE_EVENTS.slice(0, 2)), { error: connectionLoss() });
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, [
        "POST /v1/chat/completions: the connection closed before the response was complete; no row written",
      ]);
    });

    test("after the usage: one record, no warning", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), sseStream(CHAT_SSE_EVENTS.slice(0, 3)), { error: connectionLoss("ECONNRESET") });
      assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
      assert.deepEqual(h.warnings, []);
    });
  });

  describe("streams that end without usage", () => {
    test("chat: [DONE] without usage warns", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), sseStream([CHAT_SSE_EVENTS[0], CHAT_SSE_EVENTS[1], CHAT_SSE_EVENTS[3]]));
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, ["POST /v1/chat/completions: 200 response has no usage; no row written"]);
    });

    test("chat: the stream ends (normally) without usage or [DONE]", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), sseStream(CHAT_SSE_EVENTS.slice(0, 2)));
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, ["POST /v1/chat/completions: 200 response has no usage; no row written"]);
    });

    test("conversation ending in conversation.response.error warns", () => {
      const h = observe("/v1/conversations");
      respond(
        h,
        head(SSE_TYPE),
        sseStream([CONVERSATION_SSE_EVENTS[0], 'event: conversation.response.error\ndata: {"type":"conversation.response.error","message":"boom","code":3000}']),
      );
      assert.deepEqual(h.records, []);
      assert.equal(h.warnings.length, 1);
    });

    test("speech: silent", () => {
      const h = observe("/v1/audio/speech");
      respond(h, head(SSE_TYPE), sseStream(SPEECH_SSE_EVENTS.slice(0, 2)));
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, []);
    });
  });

  describe("malformed streams", () => {
    test("invalid JSON in the usage event: one warning, and what follows is ignored", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), `${CHAT_SSE_EVENTS[0]}\n\ndata: {"model":"m","usage":{"prompt_tokens":19,\n\n${CHAT_SSE}`);
      assert.deepEqual(h.records, []);
      assert.equal(h.warnings.length, 1);
      assert.match(h.warnings[0]!, /200 response ignored, a stream event that mentions usage is not valid JSON; no row written/);
    });

    test("usage with string counts", () => {
      const h = observe("/v1/audio/transcriptions");
      respond(h, head(SSE_TYPE), 'event: transcription.done\ndata: {"model":"voxtral-mini-2507","usage":{"prompt_tokens":"70","total_tokens":"716"}}\n\n');
      assert.deepEqual(h.records, []);
      assert.equal(h.warnings.length, 1);
      assert.match(h.warnings[0]!, /prompt_tokens is "70"/);
    });

    test("an event larger than maxEventBytes", () => {
      const h = observe("/v1/chat/completions", { maxEventBytes: 1000 });
      const huge = `data: {"model":"m","choices":[{"delta":{"content":"${"x".repeat(5000)}"}}]}\n\n`;
      respond(h, head(SSE_TYPE), [...chunksOf(utf8(huge), 100), utf8(CHAT_SSE)]);
      assert.deepEqual(h.records, []);
      assert.equal(h.warnings.length, 1);
      assert.match(h.warnings[0]!, /larger than 1000 bytes/);
    });

    test("binary garbage with an event-stream content-type: a no-usage warning", () => {
      const h = observe();
      respond(h, head(SSE_TYPE), BINARY_GARBAGE);
      assert.deepEqual(h.records, []);
      assert.deepEqual(h.warnings, ["POST /v1/chat/completions: 200 response has no usage; no row written"]);
    });
  });
});

// --- compressed responses -------------------------------------------------------------------------

describe("compressed responses", () => {
  for (const codec of CODECS) {
    describe(codec.header, { skip: codec.skip }, () => {
      test("JSON: recorded at the end, never an open stream", () => {
        const h = observe();
        h.call.responseStart(head(JSON_TYPE, contentEncoding(codec)));
        assert.equal(h.openStreams.size, 0);
        for (const chunk of chunksOf(codec.finished(utf8(CHAT_JSON)), 16)) h.call.responseData(chunk);
        assert.equal(h.records.length, 0);
        h.call.responseEnd();
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
        assert.deepEqual(h.warnings, []);
      });

      test("SSE: decoded as it arrives, recorded the moment its usage event is complete", async () => {
        const h = observe();
        h.call.responseStart(head(SSE_TYPE, contentEncoding(codec)));
        assert.equal(h.openStreams.size, 0, "nothing left to do at exit");
        // Each event flushed as a server streams it: the usage event arrives before [DONE] and the end.
        const events = CHAT_SSE_EVENTS.map((event) => utf8(sseStream([event])));
        const usageAt = CHAT_SSE_EVENTS.findIndex((event) => event.includes('"usage"'));
        const compressed = await codec.flushedSegments(events);
        for (let i = 0; i <= usageAt; i++) for (const chunk of chunksOf(compressed[i]!, 16)) h.call.responseData(chunk);
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)], "recorded before the stream ends");
        for (let i = usageAt + 1; i < compressed.length; i++) h.call.responseData(compressed[i]!);
        h.call.responseEnd();
        assert.equal(h.records.length, 1);
        assert.deepEqual(h.warnings, []);
      });

      test("SSE: a whole compressed stream in 16-byte chunks, then its end: one record", () => {
        const h = observe();
        respond(h, head(SSE_TYPE, contentEncoding(codec)), chunksOf(codec.finished(utf8(CHAT_SSE)), 16));
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
        assert.deepEqual(h.warnings, []);
      });

      test("SSE cancelled after [DONE] (flushed, not finished): recorded at responseError", () => {
        const h = observe();
        respond(h, head(SSE_TYPE, contentEncoding(codec)), chunksOf(codec.flushed(utf8(CHAT_SSE)), 16), {
          error: new DOMException("aborted", "AbortError"),
        });
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
        assert.deepEqual(h.warnings, []);
        assert.equal(h.openStreams.size, 0);
      });

      test("SSE still open: recorded before it ends, nothing left for finishAtExit()", () => {
        const h = observe("/v1/conversations");
        h.call.responseStart(head(SSE_TYPE, contentEncoding(codec)));
        for (const chunk of chunksOf(codec.flushed(utf8(CONVERSATION_SSE)), 16)) h.call.responseData(chunk);
        assert.deepEqual(h.records, [record("mistral-medium-latest", CONVERSATION_USAGE)]);
        assert.equal(h.openStreams.size, 0);
        h.call.finishAtExit();
        assert.equal(h.records.length, 1);
        assert.deepEqual(h.warnings, []);
      });

      test("SSE cancelled before the usage: no record, no warning", () => {
        const h = observe();
        respond(h, head(SSE_TYPE, contentEncoding(codec)), codec.flushed(utf8(sseStream(CHAT_SSE_EVENTS.slice(0, 2)))), {
          error: new DOMException("aborted", "AbortError"),
        });
        assert.deepEqual(h.records, []);
        assert.deepEqual(h.warnings, []);
        assert.equal(h.openStreams.size, 0);
      });
    });
  }

  test("x-gzip SSE without content-type is sniffed after decoding", () => {
    const h = observe();
    h.call.responseStart(head(undefined, "x-gzip"));
    h.call.responseData(zlib.gzipSync(utf8(CHAT_SSE)));
    assert.equal(h.records.length, 1, "read live once sniffed");
    h.call.responseEnd();
    assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
  });

  test("gzip JSON without content-type is sniffed after decoding", () => {
    const h = observe();
    respond(h, head(undefined, "gzip"), zlib.gzipSync(utf8(`\n${CHAT_JSON}`)));
    assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
    assert.deepEqual(h.warnings, []);
  });

  test("a compressed stream cut by the peer before the usage: a connection-closed warning", () => {
    const h = observe();
    respond(h, head(SSE_TYPE, "gzip"), gzip.flushed(utf8(sseStream(CHAT_SSE_EVENTS.slice(0, 2)))), { error: connectionLoss() });
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, ["POST /v1/chat/completions: the connection closed before the response was complete; no row written"]);
  });

  test("a compressed stream cut by the peer mid-block: one connection-closed warning, not a decoding one", () => {
    const h = observe();
    const whole = gzip.finished(utf8(CHAT_SSE));
    respond(h, head(SSE_TYPE, "gzip"), whole.subarray(0, 5), { error: connectionLoss() });
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, ["POST /v1/chat/completions: the connection closed before the response was complete; no row written"]);
  });

  test("a compressed stream cut by the peer after the usage: one record, no warning", () => {
    const h = observe();
    respond(h, head(SSE_TYPE, "br"), br.flushed(utf8(CHAT_SSE)), { error: connectionLoss() });
    assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
    assert.deepEqual(h.warnings, []);
  });

  test("compressed JSON aborted by the app: nothing; cut by the peer: a connection-closed warning", () => {
    const aborted = observe();
    respond(aborted, head(JSON_TYPE, "gzip"), gzip.flushed(utf8(CHAT_JSON)).subarray(0, 40), { error: new DOMException("x", "AbortError") });
    assert.deepEqual([aborted.records, aborted.warnings], [[], []]);

    const cut = observe();
    respond(cut, head(JSON_TYPE, "gzip"), gzip.flushed(utf8(CHAT_JSON)).subarray(0, 40), { error: connectionLoss() });
    assert.deepEqual(cut.records, []);
    assert.equal(cut.warnings.length, 1);
    assert.match(cut.warnings[0]!, /connection closed/);
  });

  test("corrupt gzip data: one warning, no record", () => {
    const h = observe();
    respond(h, head(JSON_TYPE, "gzip"), utf8(CHAT_JSON));
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, ["POST /v1/chat/completions: cannot decode the response body (corrupt gzip data); no row written"]);
  });

  test("a truncated gzip body that ended normally: one warning, no record", () => {
    const h = observe();
    respond(h, head(JSON_TYPE, "gzip"), gzip.finished(utf8(CHAT_JSON)).subarray(0, 50));
    assert.deepEqual(h.records, []);
    assert.equal(h.warnings.length, 1);
    assert.match(h.warnings[0]!, /no row written$/);
  });

  // undici's fetch decodes gzip, deflate and br with finishFlush = SYNC_FLUSH ("what cURL does"), so a
  // body whose compressed stream lacks only its end (gzip trailer, final deflate/brotli block) reaches
  // the app complete and response.json() succeeds.
  describe("a body whose compressed stream is flushed but not finished, ended normally", () => {
    for (const codec of CODECS.filter((c) => ["gzip", "deflate", "deflate (raw)", "br"].includes(c.header))) {
      test(
        `${codec.header}: recorded, as the app gets the whole body`,
        () => {
          const h = observe();
          respond(h, head(JSON_TYPE, contentEncoding(codec)), codec.flushed(utf8(CHAT_JSON)));
          assert.deepEqual(h.warnings, []);
          assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
        },
      );
    }
  });

  test("a decompression bomb: one warning, no record", () => {
    const h = observe("/v1/chat/completions", { maxBodyBytes: 64 * 1024 });
    const bomb = zlib.gzipSync(Buffer.concat([utf8('{"model":"m","p":"'), Buffer.alloc(1 << 20, 0x61), utf8('"}')]));
    respond(h, head(JSON_TYPE, "gzip"), bomb);
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, [
      "POST /v1/chat/completions: cannot decode the response body (larger than 65536 bytes once decoded); no row written",
    ]);
  });

  test("a compressed stream over maxBodyBytes once decoded: one warning, no record, not left open", () => {
    const h = observe("/v1/chat/completions", { maxBodyBytes: 200 });
    const random = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 251));
    respond(h, head(SSE_TYPE, "gzip"), chunksOf(zlib.gzipSync(random), 64));
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, ["POST /v1/chat/completions: cannot decode the response body (larger than 200 bytes once decoded); no row written"]);
    assert.equal(h.openStreams.size, 0);
  });

  test("a decompression bomb in one chunk of a stream: stopped at the limit, one warning", () => {
    const h = observe("/v1/chat/completions", { maxBodyBytes: 64 * 1024 });
    const bomb = zlib.gzipSync(Buffer.alloc(64 << 20, 0x0a));
    assert.ok(bomb.length < 100_000);
    respond(h, head(SSE_TYPE, "gzip"), [bomb]);
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, ["POST /v1/chat/completions: cannot decode the response body (larger than 65536 bytes once decoded); no row written"]);
  });

  describe("an unknown content-encoding whose body is not readable as it came: one warning, no record", () => {
    const headers = ["compress", "gzip, foo", "sdch", ...(hasZstd ? [] : ["zstd"])];
    for (const header of headers) {
      test(header, () => {
        const h = observe();
        respond(h, head(SSE_TYPE, header), BINARY_GARBAGE);
        assert.deepEqual(h.records, []);
        const name = header.includes("foo") ? "foo" : header;
        assert.deepEqual(h.warnings, [
          `POST /v1/chat/completions: cannot decode content-encoding "${name}", and the body as it came holds no usage; no row written`,
        ]);
        assert.equal(h.openStreams.size, 0);
      });
    }
    test("gzip, foo (undici then decodes neither): the gzip bytes as they came hold no usage", () => {
      const h = observe();
      respond(h, head(JSON_TYPE, "gzip, foo"), gzip.finished(utf8(CHAT_JSON)));
      assert.deepEqual(h.records, []);
      assert.equal(h.warnings.length, 1);
      assert.match(h.warnings[0]!, /cannot decode content-encoding "foo"/);
    });
  });

  // undici skips every coding once one is unknown and hands the body over as it came; node:http
  // clients that do not know a coding do the same. So the app reads the usage: so do we.
  describe("an unknown content-encoding on a plain body: read as it came, recorded", () => {
    for (const header of ["utf-8", "none", "compress", "UTF-8", "identity, utf-8"]) {
      test(`${header}: JSON`, () => {
        const h = observe();
        respond(h, head(JSON_TYPE, header), CHAT_JSON);
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
        assert.deepEqual(h.warnings, []);
      });
      test(`${header}: SSE, recorded live`, () => {
        const h = observe();
        h.call.responseStart(head(SSE_TYPE, header));
        h.call.responseData(utf8(CHAT_SSE));
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
        h.call.responseEnd();
        assert.deepEqual(h.warnings, []);
      });
    }
  });

  test("more than five codings: refused, as undici refuses them", () => {
    const h = observe();
    respond(h, head(JSON_TYPE, "identity, gzip, gzip, gzip, gzip, gzip, gzip"), CHAT_JSON);
    assert.deepEqual(h.records, []);
    assert.deepEqual(h.warnings, ['POST /v1/chat/completions: cannot decode content-encoding "identity, gzip, gzip, gzip, gzip, gzip, gzip"; no row written']);
  });

  // A Node whose zlib objects lack the synchronous handle interface gets the decoding of PR #1's time:
  // the body is collected and decoded whole at its end, at a cancel, or at exit.
  describe("the whole-body fallback", () => {
    const withFallback = (name: string, body: () => void): void => {
      test(name, () => {
        setNativeHandlesUsableForTests(false);
        try {
          body();
        } finally {
          setNativeHandlesUsableForTests(undefined);
        }
      });
    };
    for (const codec of CODECS.filter((c) => c.skip === false)) {
      withFallback(`${codec.header}: SSE recorded at its end`, () => {
        const h = observe();
        h.call.responseStart(head(SSE_TYPE, contentEncoding(codec)));
        assert.ok(h.openStreams.has(h.call));
        for (const chunk of chunksOf(codec.finished(utf8(CHAT_SSE)), 16)) h.call.responseData(chunk);
        assert.equal(h.records.length, 0, "decoded only at the end");
        h.call.responseEnd();
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
        assert.equal(h.openStreams.size, 0);
      });
      withFallback(`${codec.header}: SSE still open at exit, recorded by finishAtExit()`, () => {
        const h = observe("/v1/conversations");
        h.call.responseStart(head(SSE_TYPE, contentEncoding(codec)));
        for (const chunk of chunksOf(codec.flushed(utf8(CONVERSATION_SSE)), 16)) h.call.responseData(chunk);
        h.call.finishAtExit();
        assert.deepEqual(h.records, [record("mistral-medium-latest", CONVERSATION_USAGE)]);
        assert.deepEqual(h.warnings, []);
        assert.equal(h.openStreams.size, 0);
      });
      withFallback(`${codec.header}: SSE cancelled after [DONE], recorded at responseError`, () => {
        const h = observe();
        respond(h, head(SSE_TYPE, contentEncoding(codec)), chunksOf(codec.flushed(utf8(CHAT_SSE)), 16), { error: new DOMException("aborted", "AbortError") });
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_USAGE)]);
      });
      withFallback(`${codec.header}: JSON recorded at its end`, () => {
        const h = observe();
        respond(h, head(JSON_TYPE, contentEncoding(codec)), codec.finished(utf8(CHAT_JSON)));
        assert.deepEqual(h.records, [record("mistral-small-latest", CHAT_JSON_USAGE)]);
      });
    }
    withFallback("compressed bytes over maxBodyBytes: one warning", () => {
      const h = observe("/v1/chat/completions", { maxBodyBytes: 200 });
      const random = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 251));
      respond(h, head(SSE_TYPE, "gzip"), chunksOf(zlib.gzipSync(random), 64));
      assert.deepEqual(h.warnings, ["POST /v1/chat/completions: cannot decode the response body (larger than 200 bytes before decoding); no row written"]);
      assert.equal(h.openStreams.size, 0);
    });
  });

  test("identity content-encoding is plain", () => {
    const h = observe();
    respond(h, head(SSE_TYPE, "identity"), CHAT_SSE);
    assert.equal(h.records.length, 1);
    assert.equal(h.openStreams.size, 0);
  });
});

// --- the request body as a model fallback ---------------------------------------------------------

describe("request model fallback", () => {
  test("only endpoints whose responses may lack a model want the request body", () => {
    assert.equal(observe("/v1/audio/speech").call.wantsRequestBody, true);
    assert.equal(observe("/v1/conversations").call.wantsRequestBody, true);
    assert.equal(observe("/v1/chat/completions").call.wantsRequestBody, false);
    assert.equal(observe("/v1/embeddings").call.wantsRequestBody, false);
  });

  test("speech stream: the model comes from the request body, fed in pieces", () => {
    const h = observe("/v1/audio/speech");
    for (const chunk of chunksOf(utf8(SPEECH_REQUEST), 7)) h.call.requestBody(chunk);
    respond(h, head(SSE_TYPE), SPEECH_SSE);
    assert.deepEqual(h.records, [record("voxtral-mini-tts-2603", SPEECH_USAGE)]);
    assert.deepEqual(h.warnings, []);
  });

  test("speech stream, gzip, cancelled after the done event: still the request model", () => {
    const h = observe("/v1/audio/speech");
    h.call.requestBody(utf8(SPEECH_REQUEST));
    respond(h, head(SSE_TYPE, "gzip"), gzip.flushed(utf8(SPEECH_SSE)), { error: new DOMException("x", "AbortError") });
    assert.deepEqual(h.records, [record("voxtral-mini-tts-2603", SPEECH_USAGE)]);
  });

  test("the request chunks are copied: a buffer reused by the caller does not change the model", () => {
    const h = observe("/v1/audio/speech");
    const buffer = Buffer.from(utf8(SPEECH_REQUEST));
    h.call.requestBody(buffer);
    buffer.fill(0x20);
    respond(h, head(SSE_TYPE), SPEECH_SSE);
    assert.equal(h.records[0]?.model, "voxtral-mini-tts-2603");
  });

  const unknown: Array<[string, (call: ObservedCall) => void]> = [
    ["no request body seen", () => {}],
    ["a multipart request body", (call) => call.requestBody(utf8('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nvoxtral\r\n--b--\r\n'))],
    ["a JSON request without model", (call) => call.requestBody(utf8('{"input":"Bonjour","voice_id":"v1","stream":true}'))],
    ["a request body over maxRequestBytes", (call) => {
      for (const chunk of chunksOf(utf8(JSON.stringify({ model: "voxtral-mini-tts-2603", input: "x".repeat(200) })), 50)) call.requestBody(chunk);
    }],
  ];
  for (const [name, feed] of unknown) {
    test(`speech stream with ${name}: model "${UNKNOWN_MODEL}"`, () => {
      const h = observe("/v1/audio/speech", { maxRequestBytes: 100 });
      feed(h.call);
      respond(h, head(SSE_TYPE), SPEECH_SSE);
      assert.deepEqual(h.records, [record("unknown", SPEECH_USAGE)]);
      assert.deepEqual(h.warnings, []);
    });
  }

  test("a request body of exactly maxRequestBytes is kept", () => {
    const body = utf8(SPEECH_REQUEST);
    const h = observe("/v1/audio/speech", { maxRequestBytes: body.length });
    h.call.requestBody(body);
    respond(h, head(SSE_TYPE), SPEECH_SSE);
    assert.equal(h.records[0]?.model, "voxtral-mini-tts-2603");
  });

  test("conversations: the response's output model wins over the request's", () => {
    const h = observe("/v1/conversations");
    h.call.requestBody(utf8('{"model":"mistral-small-latest","inputs":"hi"}'));
    respond(h, head(JSON_TYPE), CONVERSATION_JSON);
    assert.equal(h.records[0]?.model, "mistral-medium-latest");
  });

  test("conversations: the request model when the response names none", () => {
    const h = observe("/v1/conversations");
    h.call.requestBody(utf8('{"model":"mistral-small-latest","inputs":"hi"}'));
    respond(h, head(JSON_TYPE), CONVERSATION_JSON_NO_MODEL);
    assert.deepEqual(h.records, [record("mistral-small-latest", { promptTokens: 120, completionTokens: 4, totalTokens: 124 })]);
  });

  test("conversation append (no model in request or response): unknown", () => {
    const h = observe("/v1/conversations/conv_0682c9a1b2c3");
    h.call.requestBody(utf8('{"inputs":"and then?","stream":false}'));
    respond(h, head(JSON_TYPE), CONVERSATION_JSON_NO_MODEL);
    assert.equal(h.records[0]?.model, "unknown");
  });

  test("chat ignores request bodies; a response without model is unknown", () => {
    const h = observe("/v1/chat/completions");
    h.call.requestBody(utf8('{"model":"mistral-small-latest","messages":[]}'));
    respond(h, head(JSON_TYPE), '{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}');
    assert.deepEqual(h.records, [record("unknown", { promptTokens: 1, completionTokens: 2, totalTokens: 3 })]);
  });
});

// --- lifecycle ------------------------------------------------------------------------------------

describe("lifecycle: at most one record per call", () => {
  test("repeated and late callbacks after a record change nothing", () => {
    const h = observe();
    respond(h, head(JSON_TYPE), CHAT_JSON);
    h.call.responseEnd();
    h.call.responseData(utf8(CHAT_JSON));
    h.call.responseError(connectionLoss());
    h.call.finishAtExit();
    h.call.responseStart(head(JSON_TYPE));
    h.call.responseData(utf8(CHAT_JSON));
    h.call.responseEnd();
    assert.equal(h.records.length, 1);
    assert.deepEqual(h.warnings, []);
  });

  test("a live stream recorded early, then ended, errored and finished at exit: one record", () => {
    const h = observe();
    h.call.responseStart(head(SSE_TYPE));
    h.call.responseData(utf8(CHAT_SSE));
    h.call.responseData(utf8(CHAT_SSE));
    h.call.responseEnd();
    h.call.responseError(connectionLoss());
    h.call.finishAtExit();
    assert.equal(h.records.length, 1);
    assert.deepEqual(h.warnings, []);
  });

  test("a compressed stream recorded live, finished at exit, then ended: one record", () => {
    const h = observe();
    h.call.responseStart(head(SSE_TYPE, "gzip"));
    h.call.responseData(gzip.flushed(utf8(CHAT_SSE)));
    h.call.finishAtExit();
    h.call.finishAtExit();
    h.call.responseEnd();
    h.call.responseError(new DOMException("x", "AbortError"));
    assert.equal(h.records.length, 1);
    assert.deepEqual(h.warnings, []);
  });

  test("finishAtExit on calls that are not compressed streams does nothing", () => {
    const json = observe();
    json.call.responseStart(head(JSON_TYPE, "gzip"));
    json.call.responseData(gzip.finished(utf8(CHAT_JSON)));
    json.call.finishAtExit();
    assert.equal(json.records.length, 0);
    json.call.responseEnd();
    assert.equal(json.records.length, 1);

    const live = observe();
    live.call.responseStart(head(SSE_TYPE));
    live.call.responseData(utf8(sseStream(CHAT_SSE_EVENTS.slice(0, 2))));
    live.call.finishAtExit();
    assert.deepEqual([live.records, live.warnings], [[], []]);
  });

  test("after a warning, nothing else is reported for the call", () => {
    const h = observe("/v1/chat/completions", { maxBodyBytes: 50 });
    respond(h, head(JSON_TYPE), CHAT_JSON, { error: connectionLoss() });
    h.call.responseEnd();
    assert.equal(h.warnings.length, 1);
    assert.equal(h.records.length, 0);
  });

  test("data before responseStart is ignored", () => {
    const h = observe();
    h.call.responseData(utf8("garbage"));
    respond(h, head(JSON_TYPE), CHAT_JSON);
    assert.equal(h.records.length, 1);
  });
});
