import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createPipeline, redactPath } from "../../src/pipeline.js";
import type { UsageEvent } from "../../src/record/usage-event.js";
import { fanOut, type UsageSink } from "../../src/sink/sink.js";
import type { ExchangeObserver } from "../../src/taps/exchange.js";
import { CHAT_JSON, CHAT_JSON_USAGE, CHAT_SSE, CHAT_USAGE, SPEECH_REQUEST, SPEECH_SSE, SPEECH_USAGE, utf8 } from "./fixtures.js";

/** A sink that keeps what it gets, and counts the calls of the exit path. */
class MemorySink implements UsageSink {
  readonly events: UsageEvent[] = [];
  flushes = 0;
  closes = 0;
  append(event: UsageEvent): void {
    this.events.push(event);
  }
  flush(): void {
    this.flushes++;
  }
  close(): void {
    this.closes++;
  }
}

function exchange(observer: ExchangeObserver, contentType: string, body: string | Uint8Array, request?: string): void {
  if (request !== undefined && observer.wantsRequestBody) observer.requestBody(utf8(request));
  observer.responseStart({ status: 200, contentType, contentEncoding: undefined });
  const bytes = typeof body === "string" ? utf8(body) : body;
  for (let at = 0; at < bytes.length; at += 64) observer.responseData(bytes.subarray(at, at + 64));
  observer.responseEnd();
}

describe("createPipeline", () => {
  test("one JSON and one SSE exchange through observe() give two events with every field, without install()", () => {
    const sink = new MemorySink();
    const warnings: string[] = [];
    let clock = 1_790_000_000_000_000;
    const pipeline = createPipeline({
      sinks: [sink],
      extraHosts: ["127.0.0.1:8080"],
      warn: (message) => warnings.push(message),
      nowMicros: () => clock++,
    });

    const json = pipeline.observe("https://api.mistral.ai", "/v1/chat/completions", "POST");
    assert.ok(json);
    exchange(json, "application/json", CHAT_JSON);
    const sse = pipeline.observe("http://127.0.0.1:8080", "/v1/chat/completions?stream=true", "POST");
    assert.ok(sse);
    exchange(sse, "text/event-stream", CHAT_SSE);

    assert.deepEqual(sink.events, [
      {
        epochMicros: 1_790_000_000_000_000,
        endpoint: "chat",
        server: { address: "api.mistral.ai", port: 443 },
        requestModel: undefined,
        responseModel: "mistral-small-latest",
        counts: CHAT_JSON_USAGE,
      },
      {
        epochMicros: 1_790_000_000_000_001,
        endpoint: "chat",
        server: { address: "127.0.0.1", port: 8080 },
        requestModel: undefined,
        responseModel: "mistral-small-latest",
        counts: CHAT_USAGE,
      },
    ]);
    assert.deepEqual(warnings, []);
  });

  test("an endpoint whose response names no model carries the requested model", () => {
    const sink = new MemorySink();
    const pipeline = createPipeline({ sinks: [sink], warn: () => {}, nowMicros: () => 1 });
    const speech = pipeline.observe("https://api.mistral.ai", "/v1/audio/speech", "POST");
    assert.ok(speech?.wantsRequestBody);
    exchange(speech, "text/event-stream", SPEECH_SSE, SPEECH_REQUEST);
    assert.equal(sink.events.length, 1);
    assert.equal(sink.events[0]!.endpoint, "speech");
    assert.equal(sink.events[0]!.requestModel, "voxtral-mini-tts-2603");
    assert.equal(sink.events[0]!.responseModel, undefined);
    assert.deepEqual(sink.events[0]!.counts, SPEECH_USAGE);
  });

  test("a forward-proxy request names its server in the absolute path", () => {
    const sink = new MemorySink();
    const pipeline = createPipeline({ sinks: [sink], warn: () => {}, nowMicros: () => 1 });
    const call = pipeline.observe("http://proxy.corp:3128", "https://api.eu.mistral.ai:8443/v1/chat/completions", "POST");
    assert.ok(call);
    exchange(call, "application/json", CHAT_JSON);
    assert.deepEqual(sink.events[0]!.server, { address: "api.eu.mistral.ai", port: 8443 });
  });

  test("requests that are not usage-bearing Mistral calls get no observer", () => {
    const pipeline = createPipeline({ sinks: [new MemorySink()], warn: () => {} });
    assert.equal(pipeline.observe("https://api.openai.com", "/v1/chat/completions", "POST"), undefined);
    assert.equal(pipeline.observe("https://api.mistral.ai", "/v1/models", "GET"), undefined);
    assert.equal(pipeline.observe("http://127.0.0.1:8080", "/v1/chat/completions", "POST"), undefined);
  });

  test("every sink gets the same event; flush and close reach them all", () => {
    const first = new MemorySink();
    const second = new MemorySink();
    const pipeline = createPipeline({ sinks: [first, second], warn: () => {}, nowMicros: () => 7 });
    exchange(pipeline.observe("https://api.mistral.ai", "/v1/chat/completions", "POST")!, "application/json", CHAT_JSON);
    assert.equal(first.events.length, 1);
    assert.equal(second.events[0], first.events[0]);
    pipeline.flush();
    pipeline.close();
    assert.deepEqual([first.flushes, first.closes, second.flushes, second.closes], [1, 1, 1, 1]);
  });
});

describe("secrets in a request path never reach a warning", () => {
  const KEY = "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY"; // the shape of a Mistral API key: 32 letters and digits
  test("a key in a gateway path is redacted in the warning of a 2xx without usage", () => {
    const warnings: string[] = [];
    const pipeline = createPipeline({ sinks: [new MemorySink()], extraHosts: ["gw.example"], warn: (m) => warnings.push(m) });
    const call = pipeline.observe("https://gw.example", `/key/${KEY}/v1/chat/completions?api_key=${KEY}`, "POST");
    assert.ok(call);
    exchange(call, "application/json", '{"model":"m","choices":[]}');
    assert.deepEqual(warnings, ["POST https://gw.example/key/[redacted]/v1/chat/completions: 200 response has no usage; no row written"]);
  });

  const cases: Array<[string, string]> = [
    ["/v1/chat/completions", "/v1/chat/completions"],
    [`/key/${KEY}/v1/chat/completions`, "/key/[redacted]/v1/chat/completions"],
    [`/sk-proj-${KEY}/v1/embeddings`, "/[redacted]/v1/embeddings"],
    ["/openai/deployments/0123456789abcdef0123456789abcdef/v1/chat/completions", "/openai/deployments/[redacted]/v1/chat/completions"],
    ["/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abcDEF123/v1/fim/completions", "/t/[redacted]/v1/fim/completions"],
    ["/x/QWxhZGRpbnxvcGVuc2VzYW1lQWxhZGRpbg/v1/embeddings", "/x/[redacted]/v1/embeddings"],
    ["https://user:s3cret@api.mistral.ai/v1/chat/completions", "https://api.mistral.ai/v1/chat/completions"],
    // Readable names stay.
    ["/mistral/v1/chat/completions", "/mistral/v1/chat/completions"],
    ["/deployments/mistral-small-2503-eastus/v1/chat/completions", "/deployments/mistral-small-2503-eastus/v1/chat/completions"],
    ["/v1/conversations/0195f0b2-7c5e-7a3b-9c1d-2e3f4a5b6c7d/restart", "/v1/conversations/0195f0b2-7c5e-7a3b-9c1d-2e3f4a5b6c7d/restart"],
    ["/2024-05-01-preview/v1/embeddings", "/2024-05-01-preview/v1/embeddings"],
  ];
  for (const [path, shown] of cases) {
    test(`${path} → ${shown}`, () => assert.equal(redactPath(path), shown));
  }
});

describe("fanOut", () => {
  test("a sink that throws is reported and does not stop the others", () => {
    const errors: unknown[] = [];
    const broken: UsageSink = {
      append: () => {
        throw new Error("disk on fire");
      },
      flush: () => {
        throw new Error("still on fire");
      },
      close: () => {},
    };
    const after = new MemorySink();
    const sink = fanOut([broken, after], (error) => errors.push(error));
    const event = { epochMicros: 1 } as UsageEvent;
    sink.append(event);
    sink.flush();
    assert.deepEqual(after.events, [event]);
    assert.equal(after.flushes, 1);
    assert.deepEqual(
      errors.map((error) => (error as Error).message),
      ["disk on fire", "still on fire"],
    );
  });
});
