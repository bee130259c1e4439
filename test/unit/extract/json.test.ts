import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Extraction } from "../../../src/extract/counts.js";
import { extractFromJson, modelFromRequestBody } from "../../../src/extract/json.js";
import {
  BINARY_GARBAGE,
  CHAT_JSON,
  CONVERSATION_JSON,
  CONVERSATION_JSON_NO_MODEL,
  EMBEDDINGS_JSON,
  MODERATION_JSON,
  MODERATION_JSON_NO_USAGE,
  OCR_JSON,
  RATE_LIMIT_JSON,
  SPEECH_JSON,
  SPEECH_REQUEST,
  TRANSCRIPTION_JSON,
} from "../fixtures.js";

function usage(model: string | undefined, promptTokens: number, completionTokens: number, totalTokens: number): Extraction {
  return { kind: "usage", counts: { promptTokens, completionTokens, totalTokens }, model };
}

function assertMalformed(extraction: Extraction, reason: RegExp): void {
  assert.equal(extraction.kind, "malformed", JSON.stringify(extraction));
  assert.match(extraction.kind === "malformed" ? extraction.reason : "", reason);
}

describe("extractFromJson: real response bodies", () => {
  const cases: Array<[string, string, Extraction]> = [
    ["chat completion", CHAT_JSON, usage("mistral-small-latest", 15, 8, 23)],
    ["embeddings without completion_tokens", EMBEDDINGS_JSON, usage("mistral-embed", 6, 0, 6)],
    ["moderation with total ≠ prompt + completion", MODERATION_JSON, usage("mistral-moderation-2411", 38, 0, 127)],
    ["transcription with total ≠ prompt + completion", TRANSCRIPTION_JSON, usage("voxtral-mini-2507", 4, 634, 3263)],
    ["conversation: model from the first output that names one", CONVERSATION_JSON, usage("mistral-medium-latest", 18709, 183, 18892)],
    ["conversation whose outputs name no model", CONVERSATION_JSON_NO_MODEL, usage(undefined, 120, 4, 124)],
  ];
  for (const [name, body, expected] of cases) {
    test(name, () => assert.deepEqual(extractFromJson(body), expected));
  }

  test("pretty-printed and surrounded by whitespace", () => {
    const body = `\n  ${JSON.stringify(JSON.parse(CHAT_JSON), null, 2)}\r\n`;
    assert.deepEqual(extractFromJson(body), usage("mistral-small-latest", 15, 8, 23));
  });

  test("multi-byte text in the body does not matter", () => {
    const body = JSON.stringify({ ...JSON.parse(CHAT_JSON), choices: [{ message: { content: "Café 日本 😀" } }] });
    assert.deepEqual(extractFromJson(body), usage("mistral-small-latest", 15, 8, 23));
  });

  describe("bodies without usage", () => {
    const cases: Array<[string, string]> = [
      ["moderation as the spec describes it", MODERATION_JSON_NO_USAGE],
      ["non-streamed speech", SPEECH_JSON],
      ["OCR (usage_info, no tokens)", OCR_JSON],
      ["an error body", RATE_LIMIT_JSON],
      ["an empty object", "{}"],
      ["usage null", '{"model":"mistral-small-latest","usage":null}'],
    ];
    for (const [name, body] of cases) {
      test(name, () => assert.deepEqual(extractFromJson(body), { kind: "none" }));
    }
  });
});

describe("extractFromJson: the model", () => {
  const counts = '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}';
  const cases: Array<[string, string, string | undefined]> = [
    ["top-level model wins over outputs", `{"model":"top",${counts},"outputs":[{"model":"inner"}]}`, "top"],
    ["empty top-level model falls back to outputs", `{"model":"",${counts},"outputs":[{"model":"inner"}]}`, "inner"],
    ["non-string top-level model falls back to outputs", `{"model":7,${counts},"outputs":[{"model":"inner"}]}`, "inner"],
    ["null top-level model falls back to outputs", `{"model":null,${counts},"outputs":[{"model":"inner"}]}`, "inner"],
    ["skips outputs without a usable model", `{${counts},"outputs":[null,"x",[],{"model":""},{"model":null},{"type":"tool.execution"},{"model":"second"},{"model":"third"}]}`, "second"],
    ["outputs not an array", `{${counts},"outputs":{"model":"inner"}}`, undefined],
    ["no model anywhere", `{${counts}}`, undefined],
  ];
  for (const [name, body, model] of cases) {
    test(name, () => {
      const extraction = extractFromJson(body);
      assert.equal(extraction.kind, "usage");
      assert.equal(extraction.kind === "usage" ? extraction.model : "?", model);
    });
  }
});

describe("extractFromJson: malformed bodies", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["empty body", "", /the body is empty/],
    ["whitespace only", " \r\n\t ", /the body is empty/],
    ["invalid JSON", '{"model":"mistral-small-latest","usage":{prompt_tokens:1}}', /not valid JSON/],
    ["truncated JSON", CHAT_JSON.slice(0, CHAT_JSON.length - 20), /not valid JSON/],
    ["two JSON documents", `${CHAT_JSON}${CHAT_JSON}`, /not valid JSON/],
    ["an SSE stream", 'data: {"usage":{"prompt_tokens":1,"total_tokens":1}}\n\n', /not valid JSON/],
    ["an HTML error page", "<html><body><h1>502 Bad Gateway</h1></body></html>", /not valid JSON/],
    ["binary garbage", BINARY_GARBAGE.toString("utf8"), /not valid JSON/],
    ["a JSON array", `[${CHAT_JSON}]`, /not a JSON object/],
    ["an empty JSON array", "[]", /not a JSON object/],
    ["a JSON string", JSON.stringify(CHAT_JSON), /not a JSON object/],
    ["JSON null", "null", /not a JSON object/],
    ["a JSON number", "42", /not a JSON object/],
    ["JSON true", "true", /not a JSON object/],
    ["usage is an array", '{"model":"m","usage":[15,8,23]}', /usage is not an object/],
    ["usage is a string", '{"model":"m","usage":"15/8/23"}', /usage is not an object/],
    ["usage is {}", '{"model":"m","usage":{}}', /neither prompt_tokens nor total_tokens/],
    ["usage with string counts", '{"model":"m","usage":{"prompt_tokens":"15","completion_tokens":"8","total_tokens":"23"}}', /prompt_tokens is "15"/],
    ["usage with a negative count", '{"model":"m","usage":{"prompt_tokens":15,"completion_tokens":-8,"total_tokens":7}}', /completion_tokens is -8/],
    ["usage with a fractional count", '{"model":"m","usage":{"prompt_tokens":15,"completion_tokens":8,"total_tokens":23.5}}', /total_tokens is 23\.5/],
  ];
  for (const [name, body, reason] of cases) {
    test(name, () => assertMalformed(extractFromJson(body), reason));
  }

  test(
    "a BOM-prefixed JSON body is read like fetch's response.json() reads it",
    () => {
      assert.deepEqual(extractFromJson(`\uFEFF${CHAT_JSON}`), usage("mistral-small-latest", 15, 8, 23));
    },
  );
});

describe("modelFromRequestBody", () => {
  const cases: Array<[string, string, string | undefined]> = [
    [
      "chat request",
      JSON.stringify({ model: "mistral-small-latest", messages: [{ role: "user", content: "Bonjour 😀" }], stream: true }),
      "mistral-small-latest",
    ],
    ["speech request", SPEECH_REQUEST, "voxtral-mini-tts-2603"],
    ["conversation start", JSON.stringify({ model: "mistral-medium-latest", inputs: "Who won?", stream: true }), "mistral-medium-latest"],
    ["agent conversation start (agent_id, no model)", JSON.stringify({ agent_id: "ag_0682c9a0f1e2", inputs: "Hi" }), undefined],
    ["conversation append (no model)", JSON.stringify({ inputs: "And then?", stream: false }), undefined],
    ["empty model", '{"model":""}', undefined],
    ["non-string model", '{"model":{"name":"x"}}', undefined],
    ["null model", '{"model":null}', undefined],
    ["a JSON array", '[{"model":"x"}]', undefined],
    ["JSON null", "null", undefined],
    ["a JSON string", '"mistral-small-latest"', undefined],
    ["empty body", "", undefined],
    ["truncated JSON", '{"model":"mistral-small-latest","messages":[', undefined],
    [
      "multipart (transcription upload)",
      '--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nvoxtral-mini-2507\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n\u0000\u0001\r\n--b--\r\n',
      undefined,
    ],
    ["binary garbage", BINARY_GARBAGE.toString("utf8"), undefined],
  ];
  for (const [name, body, expected] of cases) {
    test(name, () => assert.equal(modelFromRequestBody(body), expected));
  }
});
