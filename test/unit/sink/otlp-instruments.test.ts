import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { callAttributes, METRIC, OPERATION, TOKEN_USAGE_BUCKETS } from "../../../src/sink/otlp/instruments.js";
import { isWireEvent, toWire, type WireEvent } from "../../../src/sink/otlp/wire.js";

describe("metrics of a usage event", () => {
  test("the names: the conventions' counters and the published histogram", () => {
    assert.deepEqual(METRIC, {
      inputTokens: "gen_ai.client.inference.usage.input_tokens",
      outputTokens: "gen_ai.client.inference.usage.output_tokens",
      tokenUsage: "gen_ai.client.token.usage",
    });
  });

  test("the histogram's advised buckets: 1, 4, 16, ... 67108864", () => {
    assert.equal(TOKEN_USAGE_BUCKETS.length, 14);
    assert.equal(TOKEN_USAGE_BUCKETS[0], 1);
    assert.equal(TOKEN_USAGE_BUCKETS[1], 4);
    assert.equal(TOKEN_USAGE_BUCKETS[13], 67108864);
  });

  test("attributes of a chat call: provider, operation, the response model, the server; no request model when it was not read", () => {
    const event: WireEvent = ["chat", "api.mistral.ai", 443, null, "mistral-small-2603", 12, 3];
    assert.deepEqual(callAttributes(event), {
      "gen_ai.provider.name": "mistral_ai",
      "gen_ai.operation.name": "chat",
      "gen_ai.response.model": "mistral-small-2603",
      "server.address": "api.mistral.ai",
      "server.port": 443,
    });
  });

  test("gen_ai.response.model is the CSV's Model: the requested one when the response names none (speech), else unknown", () => {
    assert.equal(callAttributes(["speech", "h", 1, "voxtral-mini-tts", null, 5, 0])["gen_ai.response.model"], "voxtral-mini-tts");
    assert.equal(callAttributes(["speech", "h", 1, "voxtral-mini-tts", null, 5, 0])["gen_ai.request.model"], "voxtral-mini-tts");
    assert.equal(callAttributes(["conversations", "h", 1, null, null, 5, 0])["gen_ai.response.model"], "unknown");
  });

  test("operation names: the conventions' well-known values where one fits", () => {
    assert.equal(OPERATION.fim, "text_completion");
    assert.equal(OPERATION.embeddings, "embeddings");
    assert.equal(OPERATION.agents, "invoke_agent");
  });

  test("a usage event on the wire, and the check of what another thread sent", () => {
    const wire = toWire({
      epochMicros: 1,
      endpoint: "embeddings",
      server: { address: "127.0.0.1", port: 8080 },
      requestModel: undefined,
      responseModel: "mistral-embed",
      counts: { promptTokens: 6, completionTokens: 0, totalTokens: 6 },
    });
    assert.deepEqual(wire, ["embeddings", "127.0.0.1", 8080, null, "mistral-embed", 6, 0]);
    assert.ok(isWireEvent(wire));
    assert.ok(!isWireEvent({ events: [] }));
    assert.ok(!isWireEvent(["chat", "h", 1, null, "m", 1.5, 0]));
    assert.ok(!isWireEvent(["chat", "h", 1, null, "m", 1]));
  });
});
