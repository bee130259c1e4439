import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PriceBook, PriceTableError, costUsd, validatePriceTable } from "../../src/cli/prices.js";
import { BUILTIN_PRICES } from "../../src/cli/prices-data.js";

const book = new PriceBook(BUILTIN_PRICES);

/** [input, output] per 1M tokens that a model name must resolve to. */
function priceOf(model: string, b = book): [number, number | null] | undefined {
  const r = b.resolve(model);
  return r === undefined ? undefined : [r.entry.input, r.entry.output];
}

describe("the built-in table", () => {
  test("has the shape a --prices file must have, a date and a source", () => {
    assert.doesNotThrow(() => validatePriceTable(JSON.parse(JSON.stringify(BUILTIN_PRICES)), "builtin"));
    assert.match(BUILTIN_PRICES.asOf ?? "", /^\d{4}-\d\d-\d\d$/);
    assert.ok((BUILTIN_PRICES.source ?? "").length > 20);
  });

  test("prices from shared/reference/mistral-prices.md, by API name and alias", () => {
    const expected: Record<string, [number, number | null]> = {
      "mistral-large-4": [0.68, 2.09],
      "mistral-large-4-0": [0.68, 2.09],
      "mistral-large-2512": [0.5, 1.5],
      "mistral-large-latest": [0.5, 1.5],
      "mistral-large-2411": [2, 6],
      "mistral-medium-3-5": [1.5, 7.5],
      "mistral-medium-3": [1.5, 7.5],
      "mistral-medium-latest": [1.5, 7.5],
      "mistral-medium-2505": [0.4, 2],
      "mistral-medium-2508": [0.4, 2],
      "mistral-small-2603": [0.15, 0.6],
      "mistral-small-latest": [0.15, 0.6],
      "mistral-small-2506": [0.1, 0.3],
      "ministral-14b-2512": [0.2, 0.2],
      "ministral-8b-latest": [0.15, 0.15],
      "ministral-3b-2512": [0.1, 0.1],
      "ministral-8b-2410": [0.1, 0.1],
      "ministral-3b-2410": [0.04, 0.04],
      "codestral-2508": [0.3, 0.9],
      "codestral-latest": [0.3, 0.9],
      "codestral-embed-2505": [0.15, null],
      "devstral-2512": [0.4, 2],
      "devstral-medium-latest": [0.4, 2],
      "labs-devstral-small-2512": [0.1, 0.3],
      "devstral-small-2507": [0.1, 0.3],
      "magistral-medium-latest": [2, 5],
      "magistral-small-2509": [0.5, 1.5],
      "pixtral-large-latest": [2, 6],
      "pixtral-12b-2409": [0.15, 0.15],
      "mistral-embed": [0.1, null],
      "mistral-embed-2312": [0.1, null],
      "open-mistral-nemo": [0.15, 0.15],
    };
    for (const [model, price] of Object.entries(expected)) assert.deepEqual(priceOf(model), price, model);
  });

  test("the Small 4 conflict is resolved for the docs, and says so", () => {
    const r = book.resolve("mistral-small-latest");
    assert.deepEqual([r?.entry.input, r?.entry.output], [0.15, 0.6]);
    assert.match(r?.entry.note ?? "", /0\.10 \/ 0\.30/);
  });

  test("models without a source price stay unknown: never a silent zero", () => {
    for (const model of ["mistral-ocr-latest", "voxtral-mini-latest", "mistral-moderation-latest", "mistral-moderation-2411", "unknown", "gpt-4o", ""]) {
      assert.equal(book.resolve(model), undefined, model);
    }
  });
});

describe("resolution order", () => {
  test("exact name, then NAME-latest, then a dated FAMILY-YYMM as FAMILY-latest", () => {
    assert.equal(book.resolve("mistral-small-2603")?.via, "exact");
    assert.equal(book.resolve("mistral-small-latest")?.via, "exact");
    const undated = book.resolve("mistral-small");
    assert.equal(undated?.via, "latest");
    assert.equal(undated?.matched, "mistral-small-latest");
    const future = book.resolve("mistral-small-2609");
    assert.equal(future?.via, "family");
    assert.equal(future?.matched, "mistral-small-latest");
    assert.equal(future?.key, "mistral-small-2603");
    // A dated name the table lists is never priced as the family.
    assert.deepEqual(priceOf("mistral-small-2506"), [0.1, 0.3]);
    assert.equal(book.resolve("codestral-2601")?.key, "codestral-2508");
  });
  test("a dated name needs four digits, and the family must exist", () => {
    assert.equal(book.resolve("mistral-small-26"), undefined);
    assert.equal(book.resolve("voxtral-mini-2507"), undefined);
  });
});

describe("cost", () => {
  test("prompt * input + completion * output, per 1M tokens", () => {
    const small = book.resolve("mistral-small-2603")?.entry;
    assert.ok(small);
    assert.equal(costUsd(small, 1_000_000, 0), 0.15);
    assert.equal(costUsd(small, 0, 1_000_000), 0.6);
    assert.ok(Math.abs(costUsd(small, 1520, 842) - (1520 * 0.15 + 842 * 0.6) / 1e6) < 1e-15);
  });
  test("input-only models bill prompt tokens only", () => {
    const embed = book.resolve("mistral-embed")?.entry;
    assert.ok(embed);
    assert.equal(costUsd(embed, 2_000_000, 5), 0.2);
  });
});

describe("--prices files", () => {
  test("an override replaces a model's price, and its aliases follow", () => {
    const override = validatePriceTable({ asOf: "2026-11-24", models: { "mistral-small-2603": { input: 0.1, output: 0.3 } } }, "f.json");
    const b = new PriceBook(BUILTIN_PRICES, override);
    assert.deepEqual(priceOf("mistral-small-2603", b), [0.1, 0.3]);
    assert.deepEqual(priceOf("mistral-small-latest", b), [0.1, 0.3]);
    assert.deepEqual(priceOf("mistral-small-2609", b), [0.1, 0.3]);
    assert.equal(b.resolve("mistral-small-2603")?.origin, "file");
    assert.deepEqual(priceOf("codestral-2508", b), [0.3, 0.9]);
  });
  test("an override adds models and aliases", () => {
    const override = validatePriceTable({ models: { "voxtral-mini-2507": { input: 0.04, output: 0.04, aliases: ["voxtral-mini-latest"] } } }, "f.json");
    const b = new PriceBook(BUILTIN_PRICES, override);
    assert.deepEqual(priceOf("voxtral-mini-latest", b), [0.04, 0.04]);
    assert.deepEqual(priceOf("voxtral-mini-2602", b), [0.04, 0.04]);
  });
  test("wrong shapes are listed, with their JSON paths", () => {
    const bad: [unknown, RegExp][] = [
      [[], /expected a JSON object/],
      [{}, /"models" is missing/],
      [{ models: [] }, /models must be an object/],
      [{ models: {} }, /models is empty/],
      [{ models: { m: { input: "0.1", output: 0.3 } } }, /models\["m"\]\.input must be a number >= 0/],
      [{ models: { m: { input: -1, output: 0.3 } } }, /input must be a number >= 0/],
      [{ models: { m: { input: 0.1 } } }, /models\["m"\]\.output must be a number >= 0 .*or null/],
      [{ models: { m: { imput: 0.1, input: 0.1, output: 1 } } }, /unknown key "imput"/],
      [{ models: { m: { input: 0.1, output: 1, aliases: "x" } } }, /aliases must be an array/],
      [{ asOf: "24/11/2026", models: { m: { input: 0.1, output: 1 } } }, /asOf must be a date/],
      [{ currency: "EUR", models: { m: { input: 0.1, output: 1 } } }, /currency must be "USD"/],
      [{ model: {} }, /unknown key "model"/],
      [{ models: { a: { input: 1, output: 1, aliases: ["x"] }, b: { input: 1, output: 1, aliases: ["x"] } } }, /"x" names both "a" and "b"/],
    ];
    for (const [value, why] of bad) {
      assert.throws(
        () => validatePriceTable(value, "f.json"),
        (err: unknown) => err instanceof PriceTableError && why.test(err.message) && err.message.startsWith("f.json: not a valid price table"),
        JSON.stringify(value),
      );
    }
  });
});
