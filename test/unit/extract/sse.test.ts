import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Extraction } from "../../../src/extract/counts.js";
import { extractFromSse, mayMatter, SseUsageExtractor } from "../../../src/extract/sse.js";
import {
  BINARY_GARBAGE,
  CHAT_JSON,
  CHAT_SSE,
  CHAT_SSE_2024,
  CHAT_SSE_EVENTS,
  CHAT_SSE_UNICODE_EVENTS,
  CHAT_USAGE,
  CONVERSATION_SSE,
  CONVERSATION_SSE_EVENTS,
  CONVERSATION_USAGE,
  SPEECH_SSE,
  SPEECH_SSE_EVENTS,
  SPEECH_USAGE,
  sseStream,
  TRANSCRIPTION_SSE,
  TRANSCRIPTION_SSE_EVENTS,
  TRANSCRIPTION_USAGE,
  utf8,
} from "../fixtures.js";

const MAX_EVENT = 64 * 1024;

type Counts = { promptTokens: number; completionTokens: number; totalTokens: number };

const usage = (counts: Counts, model: string | undefined): Extraction => ({ kind: "usage", counts: { ...counts }, model });

/** Feeds the chunks one by one, then ends the stream. */
function run(chunks: readonly Uint8Array[], maxEventBytes = MAX_EVENT): Extraction {
  const extractor = new SseUsageExtractor(maxEventBytes);
  for (const chunk of chunks) extractor.push(chunk);
  return extractor.result ?? extractor.finish();
}

const bytewise = (bytes: Uint8Array): Uint8Array[] => Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));

/** A small deterministic PRNG, so that "random" chunkings are the same on every run. */
function* randomChunkings(bytes: Uint8Array, count: number, seed = 42): Generator<Uint8Array[]> {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let n = 0; n < count; n++) {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; ) {
      const size = 1 + Math.floor(next() * 16);
      chunks.push(bytes.subarray(at, at + size));
      at += size;
    }
    yield chunks;
  }
}

function assertMalformed(extraction: Extraction, reason: RegExp): void {
  assert.equal(extraction.kind, "malformed", JSON.stringify(extraction));
  assert.match(extraction.kind === "malformed" ? extraction.reason : "", reason);
}

describe("extractFromSse: real streams", () => {
  const cases: Array<[string, string, Extraction]> = [
    ["chat (live capture, usage on the last content chunk)", CHAT_SSE, usage(CHAT_USAGE, "mistral-small-latest")],
    ["chat (2024 capture)", CHAT_SSE_2024, usage({ promptTokens: 34, completionTokens: 100, totalTokens: 134 }, "mistral-large-latest")],
    ["conversation: usage on conversation.response.done, model from message.output.delta", CONVERSATION_SSE, usage(CONVERSATION_USAGE, "mistral-medium-latest")],
    ["transcription: usage and model on transcription.done", TRANSCRIPTION_SSE, usage(TRANSCRIPTION_USAGE, "voxtral-mini-2507")],
    ["speech: usage on speech.audio.done, no model", SPEECH_SSE, usage(SPEECH_USAGE, undefined)],
  ];
  for (const [name, stream, expected] of cases) {
    test(name, () => assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), expected));
  }
});

/** Every fixture stream, as its events, with what it must yield. */
const FIXTURE_STREAMS: Array<[string, readonly string[], Extraction]> = [
  ["chat", CHAT_SSE_EVENTS, usage(CHAT_USAGE, "mistral-small-latest")],
  ["chat with é, 日本語 and emoji", CHAT_SSE_UNICODE_EVENTS, usage(CHAT_USAGE, "mistral-small-latest")],
  ["conversation with multi-byte content", CONVERSATION_SSE_EVENTS, usage(CONVERSATION_USAGE, "mistral-medium-latest")],
  ["transcription", TRANSCRIPTION_SSE_EVENTS, usage(TRANSCRIPTION_USAGE, "voxtral-mini-2507")],
  ["speech", SPEECH_SSE_EVENTS, usage(SPEECH_USAGE, undefined)],
];

describe("events split at every byte boundary", () => {
  for (const [name, events, expected] of FIXTURE_STREAMS) {
    for (const eol of ["\n", "\r\n"] as const) {
      const bytes = utf8(sseStream(events, eol));
      const label = `${name}, ${eol === "\n" ? "LF" : "CRLF"}`;

      test(`${label}: two chunks, split at each of ${bytes.length + 1} positions`, () => {
        for (let at = 0; at <= bytes.length; at++) {
          assert.deepEqual(run([bytes.subarray(0, at), bytes.subarray(at)]), expected, `split at byte ${at}`);
        }
      });

      test(`${label}: one byte at a time`, () => {
        assert.deepEqual(run(bytewise(bytes)), expected);
      });

      test(`${label}: random chunkings`, () => {
        for (const chunks of randomChunkings(bytes, 50)) assert.deepEqual(run(chunks), expected);
      });
    }
  }

  test("a split inside every multi-byte character keeps the text intact (the model comes from the same event)", () => {
    // The model is only in the event whose content holds the multi-byte characters.
    const stream = sseStream([
      'data: {"choices":[{"delta":{"content":"é 日本 😀"}}],"model":"modèle-日本-😀"}',
      'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}',
      "data: [DONE]",
    ]);
    const bytes = utf8(stream);
    for (let at = 0; at <= bytes.length; at++) {
      assert.deepEqual(
        run([bytes.subarray(0, at), bytes.subarray(at)]),
        usage({ promptTokens: 3, completionTokens: 4, totalTokens: 7 }, "modèle-日本-😀"),
        `split at byte ${at}`,
      );
    }
  });
});

describe("whole events that cannot matter are skipped, without changing any result", () => {
  // Servers write one event per chunk, so most pushes start and end on an event boundary; those
  // without "usage", "[DONE]" or (until a model is known) "model" are not decoded or parsed.
  for (const [name, events, expected] of FIXTURE_STREAMS) {
    for (const eol of ["\n", "\r\n", "\r"] as const) {
      test(`${name}, ${JSON.stringify(eol)}: one event per chunk, and events grouped at random`, () => {
        const perEvent = events.map((event) => utf8(sseStream([event], eol)));
        assert.deepEqual(run(perEvent), expected, "one event per chunk");
        let state = 7;
        for (let n = 0; n < 30; n++) {
          const chunks: Buffer[] = [];
          for (let at = 0; at < perEvent.length; ) {
            const take = 1 + ((state = (state * 1103515245 + 12345) % 2 ** 31) % 3);
            chunks.push(Buffer.concat(perEvent.slice(at, at + take)));
            at += take;
          }
          assert.deepEqual(run(chunks), expected, `grouping ${n}`);
        }
      });
    }
  }

  test("mayMatter finds each word anywhere, including at the very end, and nothing else", () => {
    const yes: Array<[string, boolean]> = [
      ['"usage"', false], ['x"usage"', false], ['data: {"usage":1}', false], ["[DONE]", false], ["data: [DONE]\n\n", false],
      ['"model"', true], ['{"model":"m"}', true],
    ];
    const no: Array<[string, boolean]> = [
      ['"model"', false], ['"usage', false], ['usage"', false], ['"Usage"', false], ["[DONE", false], ["[done]", false],
      ['"usages"', false], ['"modelx"', true], ["", true], ['"', true], ["[", true], ['{"choices":[{"delta":{"content":"hi"}}]}', true],
    ];
    for (const [text, wantModel] of yes) assert.equal(mayMatter(utf8(text), wantModel), true, text);
    for (const [text, wantModel] of no) assert.equal(mayMatter(utf8(text), wantModel), false, text);
  });

  test("a chunk without the word usage is still parsed when it completes an event begun earlier", () => {
    const chunks = ['data: {"model":"m"}\n\n', 'data: {"model":"m","us', 'age":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}\n\n'];
    assert.deepEqual(run(chunks.map(utf8)), usage({ promptTokens: 1, completionTokens: 2, totalTokens: 3 }, "m"));
  });

  test("the first model is found in a later chunk when earlier chunks have none", () => {
    const chunks = ['data: {"id":"1"}\n\n', 'data: {"id":"2"}\n\n', 'data: {"id":"3","model":"late"}\n\n', 'data: {"model":"other"}\n\n', 'data: {"usage":{"prompt_tokens":1,"total_tokens":1}}\n\n'];
    assert.deepEqual(run(chunks.map(utf8)), usage({ promptTokens: 1, completionTokens: 0, totalTokens: 1 }, "late"));
  });

  test("[DONE] in its own chunk settles the result, and the first chunk is always parsed (BOM)", () => {
    const extractor = new SseUsageExtractor(MAX_EVENT);
    for (const chunk of ['\uFEFFdata: {"model":"m"}\n\n', 'data: {"x":1}\n\n', "data: [DONE]\n\n"]) extractor.push(utf8(chunk));
    assert.deepEqual(extractor.result, { kind: "none" });
  });

  test("a Uint8Array that is not a Buffer is searched the same way", () => {
    const chunks = ['data: {"model":"m"}\n\n', 'data: {"x":1}\n\n', 'data: {"usage":{"prompt_tokens":4,"total_tokens":4}}\n\n'];
    const views = chunks.map((chunk) => new Uint8Array(utf8(`__${chunk}`)).subarray(2));
    assert.deepEqual(run(views), usage({ promptTokens: 4, completionTokens: 0, totalTokens: 4 }, "m"));
  });

  test("skipped events do not count towards the event size cap", () => {
    const chunks = [utf8('data: {"model":"m"}\n\n'), ...Array.from({ length: 50 }, () => utf8(`data: {"p":"${"x".repeat(100)}"}\n\n`))];
    chunks.push(utf8('data: {"usage":{"prompt_tokens":1,"total_tokens":1}}\n\n'));
    assert.deepEqual(run(chunks, 500), usage({ promptTokens: 1, completionTokens: 0, totalTokens: 1 }, "m"));
  });
});

describe("SseUsageExtractor: when the result is known", () => {
  test("usage is known the moment the usage event's blank line arrives, before [DONE]", () => {
    const bytes = utf8(CHAT_SSE);
    const usageEventEnd = utf8(sseStream(CHAT_SSE_EVENTS.slice(0, 3))).length;
    const extractor = new SseUsageExtractor(MAX_EVENT);
    let knownAt: number | undefined;
    for (let i = 0; i < bytes.length && knownAt === undefined; i++) {
      extractor.push(bytes.subarray(i, i + 1));
      if (extractor.result !== undefined) knownAt = i + 1;
    }
    assert.equal(knownAt, usageEventEnd);
    assert.deepEqual(extractor.result, usage(CHAT_USAGE, "mistral-small-latest"));
  });

  test("named-event stream: known when conversation.response.done completes", () => {
    const extractor = new SseUsageExtractor(MAX_EVENT);
    extractor.push(utf8(sseStream(CONVERSATION_SSE_EVENTS.slice(0, 3))));
    assert.equal(extractor.result, undefined);
    extractor.push(utf8(`${CONVERSATION_SSE_EVENTS[3]}\n`));
    assert.equal(extractor.result, undefined);
    extractor.push(utf8("\n"));
    assert.deepEqual(extractor.result, usage(CONVERSATION_USAGE, "mistral-medium-latest"));
  });

  test("[DONE] without usage settles the result as none", () => {
    const extractor = new SseUsageExtractor(MAX_EVENT);
    extractor.push(utf8(sseStream([CHAT_SSE_EVENTS[0], CHAT_SSE_EVENTS[1]])));
    assert.equal(extractor.result, undefined);
    extractor.push(utf8("data: [DONE]\n\n"));
    assert.deepEqual(extractor.result, { kind: "none" });
    // A usage chunk after [DONE] is not read.
    extractor.push(utf8(`${CHAT_SSE_EVENTS[2]}\n\n`));
    assert.deepEqual(extractor.finish(), { kind: "none" });
  });

  test("bytes pushed after the result do not change it", () => {
    const extractor = new SseUsageExtractor(MAX_EVENT);
    extractor.push(utf8(sseStream(CHAT_SSE_EVENTS.slice(0, 3))));
    const result = extractor.result;
    extractor.push(utf8('data: {"model":"other","usage":{"prompt_tokens":1,"total_tokens":1}}\n\ndata: [DONE]\n\n'));
    extractor.push(utf8("data: {broken\n\n"));
    assert.deepEqual(extractor.result, result);
    assert.deepEqual(extractor.finish(), usage(CHAT_USAGE, "mistral-small-latest"));
  });

  test("finish() without any input, and finish() twice", () => {
    const extractor = new SseUsageExtractor(MAX_EVENT);
    assert.equal(extractor.result, undefined);
    assert.deepEqual(extractor.finish(), { kind: "none" });
    assert.deepEqual(extractor.finish(), { kind: "none" });
    assert.deepEqual(extractor.result, { kind: "none" });
  });

  test("an empty chunk changes nothing", () => {
    const extractor = new SseUsageExtractor(MAX_EVENT);
    extractor.push(new Uint8Array(0));
    assert.equal(extractor.result, undefined);
  });
});

describe("truncated streams: an event without its final blank line does not count", () => {
  for (const eol of ["\n", "\r\n"] as const) {
    test(`conversation (${eol === "\n" ? "LF" : "CRLF"}), cut at every byte before the end`, () => {
      const bytes = utf8(sseStream(CONVERSATION_SSE_EVENTS, eol));
      // With CRLF, the very last "\n" is left out: whether the preceding "\r" ends the line is moot.
      const last = eol === "\n" ? bytes.length - 1 : bytes.length - 2;
      for (let at = 0; at <= last; at++) {
        assert.deepEqual(extractFromSse(bytes.subarray(0, at), MAX_EVENT), { kind: "none" }, `cut at byte ${at}`);
      }
      assert.deepEqual(extractFromSse(bytes, MAX_EVENT), usage(CONVERSATION_USAGE, "mistral-medium-latest"));
    });
  }

  test("chat: cut anywhere before the usage chunk's blank line gives none, anywhere after gives usage", () => {
    const bytes = utf8(CHAT_SSE);
    const usageEventEnd = utf8(sseStream(CHAT_SSE_EVENTS.slice(0, 3))).length;
    for (let at = 0; at <= bytes.length; at++) {
      const expected = at >= usageEventEnd ? usage(CHAT_USAGE, "mistral-small-latest") : { kind: "none" };
      assert.deepEqual(extractFromSse(bytes.subarray(0, at), MAX_EVENT), expected, `cut at byte ${at}`);
    }
  });

  test("the usage chunk followed by a single newline only", () => {
    const stream = `${sseStream(CHAT_SSE_EVENTS.slice(0, 2))}${CHAT_SSE_EVENTS[2]}\n`;
    assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), { kind: "none" });
  });

  test("cut in the middle of the usage JSON", () => {
    const stream = `${sseStream(CHAT_SSE_EVENTS.slice(0, 2))}${CHAT_SSE_EVENTS[2].slice(0, 200)}`;
    assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), { kind: "none" });
  });
});

describe("SSE syntax", () => {
  const USAGE_CHUNK = 'data: {"model":"mistral-small-latest","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":6,"total_tokens":11}}';
  const expected = usage({ promptTokens: 5, completionTokens: 6, totalTokens: 11 }, "mistral-small-latest");

  const cases: Array<[string, string]> = [
    ["comments and keep-alive pings between events", `: ping\n\n:\n\n${CHAT_SSE_EVENTS[0]}\n\n: ping - 2026-08-21 09:12:44.281Z\n\n${USAGE_CHUNK}\n\n: ping\n\ndata: [DONE]\n\n`],
    ["a comment line inside an event", `: keep-alive\n${USAGE_CHUNK}\n: more\n\n`],
    ["id and retry fields", `id: 1\nretry: 3000\n${USAGE_CHUNK}\nid: 2\n\n`],
    ["unknown fields", `x-foo: bar\n${USAGE_CHUNK}\nnonsense\n\n`],
    ["data: without the optional space", `${USAGE_CHUNK.replace("data: ", "data:")}\n\n`],
    ["JSON spread over several data lines", 'data: {"model":"mistral-small-latest",\ndata: "usage":{"prompt_tokens":5,\ndata: "completion_tokens":6,"total_tokens":11}}\n\n'],
    ["leading blank lines", `\n\n\n${USAGE_CHUNK}\n\n`],
    ["an explicit `event: message` is a data-only event", `event: message\n${USAGE_CHUNK}\n\n`],
    ["a BOM before the first event", `\uFEFF${USAGE_CHUNK}\n\n`],
    ["mixed LF and CRLF", `${CHAT_SSE_EVENTS[0]}\r\n\n${USAGE_CHUNK}\n\r\n`],
    ["usage: null on earlier chunks is skipped", `data: {"model":"mistral-small-latest","usage":null}\n\n${USAGE_CHUNK}\n\n`],
    ["JSON that only quotes \"usage\" inside a string is not a usage chunk", `data: {"model":"mistral-small-latest","choices":[{"delta":{"content":"the \\"usage\\" field {"}}]}\n\n${USAGE_CHUNK}\n\n`],
  ];
  for (const [name, stream] of cases) {
    test(name, () => {
      assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), expected);
      assert.deepEqual(run(bytewise(utf8(stream))), expected, "byte by byte");
    });
  }

  test("CR-only line endings: a data-only stream", () => {
    const bytes = utf8(sseStream(CHAT_SSE_EVENTS, "\r"));
    assert.deepEqual(extractFromSse(bytes, MAX_EVENT), usage(CHAT_USAGE, "mistral-small-latest"));
  });

  test(
    "CR-only line endings: a named-event stream whose last event is the usage event",
    () => {
      const bytes = utf8(sseStream(CONVERSATION_SSE_EVENTS, "\r"));
      assert.deepEqual(extractFromSse(bytes, MAX_EVENT), usage(CONVERSATION_USAGE, "mistral-medium-latest"));
    },
  );
});

describe("the model", () => {
  const counts = '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}';
  const cases: Array<[string, string[], string | undefined]> = [
    ["the usage chunk's own model", [`data: {"model":"a"}`, `data: {"model":"b",${counts}}`], "b"],
    ["an earlier chunk's model when the usage chunk has none", [`data: {"model":"a"}`, `data: {${counts}}`], "a"],
    ["the first earlier model", [`data: {"model":"a"}`, `data: {"model":"b"}`, `data: {${counts}}`], "a"],
    ["a later model when the first chunk's model is null", [`data: {"model":null}`, `data: {"model":"b"}`, `data: {${counts}}`], "b"],
    ["an empty model is no model", [`data: {"model":""}`, `data: {"model":"",${counts}}`], undefined],
    ["no model anywhere", [`data: {"id":"x"}`, `data: {${counts}}`], undefined],
    ["an earlier chunk that is invalid JSON is skipped", [`data: {"model":"a"`, `data: {"model":"b"}`, `data: {${counts}}`], "b"],
    ["named: transcription.done's own model wins", [`event: transcription.text.delta\ndata: {"model":"a"}`, `event: transcription.done\ndata: {"model":"b",${counts}}`], "b"],
    ["named: a model on any earlier event", [`event: function.call.delta\ndata: {"model":"a","arguments":"{}"}`, `event: conversation.response.done\ndata: {${counts}}`], "a"],
  ];
  for (const [name, events, model] of cases) {
    test(name, () => {
      const extraction = extractFromSse(utf8(sseStream(events)), MAX_EVENT);
      assert.equal(extraction.kind, "usage", JSON.stringify(extraction));
      assert.equal(extraction.kind === "usage" ? extraction.model : "?", model);
    });
  }
});

describe("named events: only the *.done usage events count", () => {
  const counts = '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}';

  for (const name of ["conversation.response.done", "transcription.done", "speech.audio.done"]) {
    test(`${name} carries usage`, () => {
      const extraction = extractFromSse(utf8(`event: ${name}\ndata: {"type":"${name}",${counts}}\n\n`), MAX_EVENT);
      assert.deepEqual(extraction, usage({ promptTokens: 1, completionTokens: 2, totalTokens: 3 }, undefined));
    });
  }

  for (const name of [
    "conversation.response.started",
    "conversation.response.error",
    "message.output.delta",
    "tool.execution.done",
    "agent.handoff.done",
    "transcription.segment",
    "speech.audio.delta",
    "ping",
  ]) {
    test(`usage on ${name} is ignored`, () => {
      const stream = `event: ${name}\ndata: {"type":"${name}",${counts}}\n\n`;
      assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), { kind: "none" });
    });
  }

  test("invalid JSON on an event that cannot carry usage is ignored", () => {
    const stream = sseStream([`event: message.output.delta\ndata: {"usage": oops`, ...CONVERSATION_SSE_EVENTS]);
    assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), usage(CONVERSATION_USAGE, "mistral-medium-latest"));
  });

  test("a conversation that ends with conversation.response.error has no usage", () => {
    const stream = sseStream([
      CONVERSATION_SSE_EVENTS[0],
      CONVERSATION_SSE_EVENTS[1],
      'event: conversation.response.error\ndata: {"type":"conversation.response.error","message":"Internal error","code":3000}',
    ]);
    assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), { kind: "none" });
  });

  test("transcription.done with usage null, then nothing: none", () => {
    const stream = 'event: transcription.done\ndata: {"type":"transcription.done","model":"voxtral-mini-2507","usage":null}\n\n';
    assert.deepEqual(extractFromSse(utf8(stream), MAX_EVENT), { kind: "none" });
  });
});

describe("malformed streams", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["invalid JSON in the usage chunk", `${CHAT_SSE_EVENTS[0]}\n\ndata: {"model":"m","usage":{"prompt_tokens":19,}\n\ndata: [DONE]\n\n`, /mentions usage is not valid JSON/],
    ["invalid JSON in conversation.response.done", `event: conversation.response.done\ndata: {"type":"conversation.response.done","usage":{"prompt_tokens":1\n\n`, /mentions usage is not valid JSON/],
    ["invalid JSON in transcription.done", `event: transcription.done\ndata: {"usage": {prompt_tokens: 1}}\n\n`, /mentions usage is not valid JSON/],
    ["usage is an array", 'data: {"model":"m","usage":[19,2,21]}\n\n', /usage is not an object/],
    ["usage is {}", 'data: {"model":"m","usage":{}}\n\n', /neither prompt_tokens nor total_tokens/],
    ["usage with string counts", 'data: {"model":"m","usage":{"prompt_tokens":"19","completion_tokens":"2","total_tokens":"21"}}\n\n', /prompt_tokens is "19"/],
    ["usage with a negative count", 'event: speech.audio.done\ndata: {"usage":{"prompt_tokens":56,"completion_tokens":-1,"total_tokens":55}}\n\n', /completion_tokens is -1/],
  ];
  for (const [name, stream, reason] of cases) {
    test(name, () => {
      assertMalformed(extractFromSse(utf8(stream), MAX_EVENT), reason);
      assertMalformed(run(bytewise(utf8(stream))), reason);
    });
  }

  const noUsage: Array<[string, Uint8Array]> = [
    ["empty", new Uint8Array(0)],
    ["binary garbage", BINARY_GARBAGE],
    ["a JSON body rather than a stream", utf8(CHAT_JSON)],
    ["only comments", utf8(": ping\n\n: ping\n\n")],
    ["only [DONE]", utf8("data: [DONE]\n\n")],
    ["a JSON string mentioning usage", utf8('data: "usage"\n\n')],
    ["a JSON array holding a usage object", utf8('data: [{"usage":{"prompt_tokens":1,"total_tokens":1}}]\n\n')],
    ["JSON null", utf8('data: null\n\ndata: {"x":"usage"}\n\n')],
    ["an HTML page", utf8("<html><body>502 Bad Gateway</body></html>")],
  ];
  for (const [name, bytes] of noUsage) {
    test(`${name}: none`, () => assert.deepEqual(extractFromSse(bytes, MAX_EVENT), { kind: "none" }));
  }
});

describe("event size cap", () => {
  const big = (size: number) => `data: {"model":"m","choices":[],"p":"${"x".repeat(size)}"}`;
  const USAGE_CHUNK = 'data: {"model":"m","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}';

  // The cap bounds what is buffered across chunks (an event still incomplete after the cap), which is
  // what the memory bound needs; an event that arrives complete within one chunk is parsed as is.
  test("a complete event larger than the cap, delivered in one chunk, is parsed", () => {
    const event = 'data: {"model":"m","p":"' + "x".repeat(1000) + '","usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}';
    assert.equal(extractFromSse(utf8(`${event}\n\n`), 500).kind, "usage");
  });

  test("a single event larger than the cap is malformed, pushed byte by byte", () => {
    const extractor = new SseUsageExtractor(500);
    const bytes = utf8(`${big(1000)}\n\n${USAGE_CHUNK}\n\n`);
    let malformedAt: number | undefined;
    for (let i = 0; i < bytes.length && malformedAt === undefined; i++) {
      extractor.push(bytes.subarray(i, i + 1));
      if (extractor.result !== undefined) malformedAt = i + 1;
    }
    assert.equal(malformedAt, 501, "detected as soon as the event passes the cap");
    assertMalformed(extractor.finish(), /larger than 500 bytes/);
  });

  test("an unterminated event that grows past the cap is malformed", () => {
    const extractor = new SseUsageExtractor(500);
    for (let i = 0; i < 20; i++) extractor.push(utf8(i === 0 ? 'data: {"p":"' : "x".repeat(50)));
    assertMalformed(extractor.result ?? extractor.finish(), /larger than 500 bytes/);
  });

  test("many events, each under the cap, adding up to far more than it", () => {
    const stream = `${Array.from({ length: 200 }, () => `${big(300)}\n\n`).join("")}${USAGE_CHUNK}\n\n`;
    const expected = usage({ promptTokens: 1, completionTokens: 1, totalTokens: 2 }, "m");
    assert.deepEqual(extractFromSse(utf8(stream), 500), expected);
    assert.deepEqual(run(bytewise(utf8(stream)), 500), expected);
  });

  test("an event exactly at the cap is accepted", () => {
    const event = `${USAGE_CHUNK}\n\n`;
    const bytes = utf8(event);
    assert.equal(extractFromSse(bytes, bytes.length).kind, "usage");
  });
});
