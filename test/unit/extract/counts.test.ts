import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { malformed, modelOf, NO_USAGE, readUsage, type Extraction } from "../../../src/extract/counts.js";

function counts(extraction: Extraction) {
  assert.equal(extraction.kind, "usage", `expected usage, got ${JSON.stringify(extraction)}`);
  return extraction.kind === "usage" ? extraction.counts : undefined;
}

describe("readUsage: well-formed usage objects", () => {
  const cases: Array<[string, unknown, [number, number, number]]> = [
    [
      "chat (live capture: details, service_tier)",
      { prompt_tokens: 19, total_tokens: 21, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 0 }, service_tier: "standard" },
      [19, 2, 21],
    ],
    [
      "moderation: total is taken as reported, not prompt + completion",
      { prompt_audio_seconds: null, prompt_tokens: 38, total_tokens: 127, completion_tokens: 0, request_count: 1, prompt_token_details: null },
      [38, 0, 127],
    ],
    [
      "transcription",
      { prompt_audio_seconds: 203, prompt_tokens: 70, total_tokens: 716, completion_tokens: 646, request_count: 1, num_cached_tokens: 0 },
      [70, 646, 716],
    ],
    [
      "transcription whose total differs from the sum (batch docs)",
      { prompt_audio_seconds: 203, prompt_tokens: 4, total_tokens: 3263, completion_tokens: 634 },
      [4, 634, 3263],
    ],
    ["total smaller than the sum is still taken as reported", { prompt_tokens: 10, completion_tokens: 10, total_tokens: 5 }, [10, 10, 5]],
    ["embeddings: completion_tokens absent counts as 0", { prompt_tokens: 6, total_tokens: 6 }, [6, 0, 6]],
    ["completion_tokens null counts as 0", { prompt_tokens: 6, completion_tokens: null, total_tokens: 6 }, [6, 0, 6]],
    ["total_tokens absent is the sum", { prompt_tokens: 12, completion_tokens: 30 }, [12, 30, 42]],
    ["total_tokens null is the sum", { prompt_tokens: 12, completion_tokens: 30, total_tokens: null }, [12, 30, 42]],
    ["only prompt_tokens", { prompt_tokens: 7 }, [7, 0, 7]],
    ["conversation usage with connector fields", { prompt_tokens: 18709, total_tokens: 18892, completion_tokens: 183, connector_tokens: null, connectors: null }, [18709, 183, 18892]],
    ["speech", { prompt_tokens: 56, completion_tokens: 94080, total_tokens: 94136 }, [56, 94080, 94136]],
    ["all zero", { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, [0, 0, 0]],
    ["integral floats such as 1e3 and 5.0", { prompt_tokens: 1e3, completion_tokens: 5.0, total_tokens: 1005 }, [1000, 5, 1005]],
    ["largest safe integer", { prompt_tokens: Number.MAX_SAFE_INTEGER, completion_tokens: 0 }, [Number.MAX_SAFE_INTEGER, 0, Number.MAX_SAFE_INTEGER]],
    ["reasoning details are ignored", { prompt_tokens: 5, completion_tokens: 50, total_tokens: 55, completion_tokens_details: { reasoning_tokens: 40 } }, [5, 50, 55]],
  ];

  for (const [name, usage, [promptTokens, completionTokens, totalTokens]] of cases) {
    test(name, () => {
      assert.deepEqual(readUsage(usage, "mistral-small-latest"), {
        kind: "usage",
        counts: { promptTokens, completionTokens, totalTokens },
        model: "mistral-small-latest",
      });
    });
  }

  test("the model is passed through, including undefined", () => {
    const extraction = readUsage({ prompt_tokens: 1, total_tokens: 1 }, undefined);
    assert.equal(extraction.kind, "usage");
    assert.equal(extraction.kind === "usage" ? extraction.model : "?", undefined);
  });

  test("a usage object parsed from JSON text", () => {
    const usage: unknown = JSON.parse('{"prompt_tokens":34,"total_tokens":134,"completion_tokens":100}');
    assert.deepEqual(counts(readUsage(usage, "mistral-large-latest")), { promptTokens: 34, completionTokens: 100, totalTokens: 134 });
  });
});

describe("readUsage: no usage", () => {
  for (const usage of [undefined, null]) {
    test(String(usage), () => {
      assert.equal(readUsage(usage, "m"), NO_USAGE);
      assert.deepEqual(readUsage(usage, "m"), { kind: "none" });
    });
  }
});

describe("readUsage: malformed usage", () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ["an array", [19, 2, 21], /usage is not an object/],
    ["an empty array", [], /usage is not an object/],
    ["a string", "19,2,21", /usage is not an object/],
    ["a number", 21, /usage is not an object/],
    ["a boolean", true, /usage is not an object/],
    ["an empty object", {}, /neither prompt_tokens nor total_tokens/],
    ["only completion_tokens", { completion_tokens: 2 }, /neither prompt_tokens nor total_tokens/],
    ["unrelated fields only", { pages_processed: 24, doc_size_bytes: 12640953 }, /neither prompt_tokens nor total_tokens/],
    ["string counts", { prompt_tokens: "19", completion_tokens: "2", total_tokens: "21" }, /usage\.prompt_tokens is "19", not a whole number/],
    ["a string completion count", { prompt_tokens: 19, completion_tokens: "2", total_tokens: 21 }, /usage\.completion_tokens is "2"/],
    ["a string total", { prompt_tokens: 19, completion_tokens: 2, total_tokens: "21" }, /usage\.total_tokens is "21"/],
    ["an empty-string count", { prompt_tokens: "", total_tokens: 3 }, /usage\.prompt_tokens is ""/],
    ["a negative count", { prompt_tokens: -1, completion_tokens: 2, total_tokens: 1 }, /^usage\.prompt_tokens is -1, a negative count$/],
    ["a negative total", { prompt_tokens: 1, completion_tokens: 2, total_tokens: -3 }, /^usage\.total_tokens is -3, a negative count$/],
    ["a fractional count", { prompt_tokens: 19.5, completion_tokens: 2, total_tokens: 21.5 }, /usage\.prompt_tokens is 19\.5/],
    ["a fractional completion", { prompt_tokens: 19, completion_tokens: 0.1, total_tokens: 19 }, /usage\.completion_tokens is 0\.1/],
    ["NaN", { prompt_tokens: Number.NaN, total_tokens: 1 }, /usage\.prompt_tokens is null/],
    ["Infinity", { prompt_tokens: 1, total_tokens: Number.POSITIVE_INFINITY }, /usage\.total_tokens is null/],
    ["beyond the safe integer range", { prompt_tokens: 2 ** 53, total_tokens: 2 ** 53 }, /^usage\.prompt_tokens is 9007199254740992, too large to be an exact count \(more than 9007199254740991\)$/],
    // JSON.parse reads 2^60 as a whole number: it is too large, not fractional.
    ["2^60, as JSON.parse reads it", JSON.parse('{"prompt_tokens":1152921504606846976,"total_tokens":1}'), /^usage\.prompt_tokens is 1152921504606846976, too large to be an exact count/],
    ["a huge total", { prompt_tokens: 1, total_tokens: 1e300 }, /^usage\.total_tokens is 1e\+300, too large/],
    ["a fractional count is still not whole", { prompt_tokens: 2.5, total_tokens: 3 }, /^usage\.prompt_tokens is 2\.5, not a whole number$/],
    ["a boolean count", { prompt_tokens: true, total_tokens: 1 }, /usage\.prompt_tokens is true/],
    ["an object count", { prompt_tokens: { value: 1 }, total_tokens: 1 }, /usage\.prompt_tokens is \{"value":1\}/],
    ["an array count", { prompt_tokens: [1], total_tokens: 1 }, /usage\.prompt_tokens is \[1\]/],
  ];

  for (const [name, usage, reason] of cases) {
    test(name, () => {
      const extraction = readUsage(usage, "m");
      assert.equal(extraction.kind, "malformed");
      assert.match(extraction.kind === "malformed" ? extraction.reason : "", reason);
    });
  }
});

describe("modelOf", () => {
  const cases: Array<[unknown, string | undefined]> = [
    ["mistral-small-latest", "mistral-small-latest"],
    [" ", " "],
    ["", undefined],
    [null, undefined],
    [undefined, undefined],
    [42, undefined],
    [["mistral-small-latest"], undefined],
    [{ id: "mistral-small-latest" }, undefined],
  ];
  for (const [value, expected] of cases) {
    test(`${JSON.stringify(value) ?? "undefined"} → ${expected ?? "undefined"}`, () => assert.equal(modelOf(value), expected));
  }
});

describe("malformed and NO_USAGE", () => {
  test("malformed(reason) builds a malformed extraction", () => {
    assert.deepEqual(malformed("the body is empty"), { kind: "malformed", reason: "the body is empty" });
  });

  test("NO_USAGE is frozen", () => {
    assert.ok(Object.isFrozen(NO_USAGE));
    assert.deepEqual(NO_USAGE, { kind: "none" });
  });
});
