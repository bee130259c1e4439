import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { extractFromJson, extractFromJsonChunks, LARGE_JSON_BYTES } from "../../../src/extract/json.js";
import { membersFromTail } from "../../../src/extract/json-tail.js";

const tail = (text: string) => membersFromTail(Buffer.from(text));

/** An embeddings body as Mistral serializes it: data first, then model and usage. */
function embeddingsBody(inputs: number, extra: Record<string, unknown> = {}): string {
  const data = Array.from({ length: inputs }, (_, index) => ({
    object: "embedding",
    embedding: Array.from({ length: 64 }, (_, j) => Math.sin(index * 64 + j) / 7),
    index,
  }));
  return JSON.stringify({ id: "embd-1", object: "list", data, model: "mistral-embed", usage: { prompt_tokens: 300, total_tokens: 300 }, ...extra });
}

/** Splits text into chunks of `size` bytes, as a socket would deliver it. */
function chunked(text: string, size: number): Buffer[] {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

describe("membersFromTail: the last top-level usage and model, read from the end", () => {
  test("an embeddings body: the two members after the data", () => {
    assert.deepEqual(tail(embeddingsBody(3)), { usage: '{"prompt_tokens":300,"total_tokens":300}', model: '"mistral-embed"' });
  });

  test("a chat body: model before the choices, usage after them", () => {
    const body = JSON.stringify({ id: "x", model: "mistral-small", choices: [{ message: { content: 'say "usage": {} ] } \\' } }], usage: { prompt_tokens: 1 } });
    assert.deepEqual(tail(body), { usage: '{"prompt_tokens":1}', model: '"mistral-small"' });
  });

  test("white space anywhere between the tokens", () => {
    const body = ' {\n "data" : [ 1 , 2 ] ,\r\n\t"model"\t:\t"m" ,\n "usage" :\n { "total_tokens" : 5 }\n }\n ';
    assert.deepEqual(tail(body), { usage: '{ "total_tokens" : 5 }', model: '"m"' });
  });

  test("strings with escaped quotes and backslashes are skipped whole", () => {
    const body = JSON.stringify({ model: 'm "quoted" \\ and \\"', note: '\\\\"}]', usage: { total_tokens: 2 }, after: 'x\\' });
    const found = tail(body);
    assert.ok(found !== undefined);
    assert.equal(JSON.parse(found.model), 'm "quoted" \\ and \\"');
    assert.deepEqual(JSON.parse(found.usage), { total_tokens: 2 });
  });

  test("a duplicated key: the last one, as JSON.parse keeps", () => {
    const body = '{"usage":{"total_tokens":1},"model":"first","usage":{"total_tokens":2},"model":"last"}';
    assert.deepEqual(tail(body), { usage: '{"total_tokens":2}', model: '"last"' });
  });

  test("not sure, so undefined: the whole body is parsed instead", () => {
    const cases: Array<[string, string]> = [
      ["no model at the top (conversations name it in outputs)", '{"outputs":[{"model":"m"}],"usage":{"total_tokens":1}}'],
      ["no usage", '{"model":"m","data":[]}'],
      ["a later key written with escapes could spell usage", '{"model":"m","usage":{"total_tokens":1},"us\\u0061ge":{"total_tokens":9}}'],
      ["cut short", '{"model":"m","usage":{"total_tokens":1}'],
      ["an array, not an object", '[{"model":"m","usage":{}}]'],
      ["a member without its colon", '{"model":"m","usage" {"total_tokens":1}}'],
      ["empty", ""],
      ["only the end of the body in hand: a string whose opening quote is not in it", 'tial string","usage":{}}'],
      ["a number that may begin before the bytes in hand", '123,"usage":{}}'],
    ];
    for (const [name, body] of cases) assert.equal(tail(body), undefined, name);
  });
});

describe("extractFromJsonChunks: large bodies from the tail, the same result as parsing them whole", () => {
  test("an embeddings body of 300 inputs in 16 KiB chunks: the row's usage and model", () => {
    const body = embeddingsBody(300);
    assert.ok(Buffer.byteLength(body) > 4 * LARGE_JSON_BYTES);
    const chunks = chunked(body, 16 * 1024);
    assert.deepEqual(extractFromJsonChunks(chunks, Buffer.byteLength(body)), {
      kind: "usage",
      counts: { promptTokens: 300, completionTokens: 0, totalTokens: 300 },
      model: "mistral-embed",
    });
  });

  test("large bodies the tail cannot answer for go through the whole parse, with its verdicts", () => {
    const big = "x".repeat(LARGE_JSON_BYTES);
    const bodies = [
      // A top-level array.
      `[{"pad":"${big}","model":"m","usage":{"total_tokens":1}}]`,
      // The model is not a string: the whole parse decides (outputs, or no model).
      `{"outputs":[{"model":"from-outputs"}],"pad":"${big}","model":null,"usage":{"total_tokens":1}}`,
      // A usage that is not an object, found at the end: readUsage's verdict either way.
      `{"pad":"${big}","model":"m","usage":[1]}`,
      // The usage far from the end, before 64 KiB of another member.
      `{"model":"m","usage":{"total_tokens":4},"pad":"${big}"}`,
      // A byte-order mark.
      `\ufeff{"pad":"${big}","model":"m","usage":{"total_tokens":3}}`,
    ];
    for (const body of bodies) {
      const bytes = Buffer.byteLength(body);
      assert.deepEqual(extractFromJsonChunks(chunked(body, 1000), bytes), extractFromJson(body), body.slice(0, 40));
    }
  });

  test("a large body is trusted before the members read: its usage is counted even where the rest would not parse", () => {
    // The API reported this usage at the end of a 2xx response; whether the app's parser copes with
    // the middle is the app's affair. (Below 64 KiB the whole body is parsed, and validated.)
    const body = `{"pad":"${"x".repeat(LARGE_JSON_BYTES)}" oops,"model":"m","usage":{"total_tokens":1}}`;
    assert.deepEqual(extractFromJsonChunks(chunked(body, 1000), Buffer.byteLength(body)), {
      kind: "usage",
      counts: { promptTokens: 0, completionTokens: 0, totalTokens: 1 },
      model: "m",
    });
  });

  test("random documents: whenever the tail answers, it answers as JSON.parse does", () => {
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const STRINGS = ['"', "\\", '\\"', "}", "]", "{", "[", ",", ":", '"usage":', '"model":"x"', "é", "\u2028", "plain"];
    const randomString = (): string => Array.from({ length: Math.floor(random() * 5) }, () => pick(STRINGS)).join("");
    const randomValue = (depth: number): unknown => {
      const roll = random();
      if (depth > 3 || roll < 0.3) return pick([0, -1.5e-7, 12345678901, true, false, null, randomString()]);
      if (roll < 0.65) return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(depth + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, () => [pick(["usage", "model", "data", randomString()]), randomValue(depth + 1)]));
    };
    let answered = 0;
    for (let round = 0; round < 3000; round++) {
      const members: string[] = [];
      for (let m = Math.floor(random() * 6); m > 0; m--) {
        const key = pick(["usage", "model", "data", "id", "us\\u0061ge", "mod\\\"el", randomString()]);
        const value =
          key === "usage" && random() < 0.8
            ? { prompt_tokens: Math.floor(random() * 100), total_tokens: Math.floor(random() * 200) }
            : key === "model" && random() < 0.8
              ? pick(["mistral-embed", 'm"x', "m\\y", "é"])
              : randomValue(0);
        const space = pick(["", " ", "\n\t"]);
        members.push(`${space}${JSON.stringify(key).replace(/\\\\u0061/g, "\\u0061").replace(/\\\\\\"/g, '\\"')}${space}:${space}${JSON.stringify(value)}${space}`);
      }
      // Half of them end as Mistral's bodies do, with the two members (in either order).
      if (random() < 0.5) {
        const ending = ['"model":"mistral-embed"', '"usage":{"prompt_tokens":1,"total_tokens":1}'];
        members.push(...(random() < 0.5 ? ending : ending.reverse()));
      }
      const text = `{${members.join(",")}}`;
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      // Only the last bytes in hand (the body's last chunks): an answer, if any, is still the right one.
      const cutAt = Math.floor(random() * (text.length + 1));
      const cut = membersFromTail(Buffer.from(text).subarray(Buffer.byteLength(text.slice(0, cutAt))));
      if (cut !== undefined) {
        assert.deepEqual(JSON.parse(cut.usage), parsed["usage"], `cut at ${cutAt}: ${text}`);
        assert.deepEqual(JSON.parse(cut.model), parsed["model"], `cut at ${cutAt}: ${text}`);
      }
      const found = tail(text);
      if (found === undefined) continue;
      answered++;
      assert.deepEqual(JSON.parse(found.usage), parsed["usage"], text);
      assert.deepEqual(JSON.parse(found.model), parsed["model"], text);
    }
    assert.ok(answered > 1000, `the tail answered for ${answered} documents`);
  });
});
