import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HEADER_FIELDS, HEADER_LINE } from "../../../src/log/format.js";
import { formatTimestamp } from "../../../src/log/format.js";
import { checkHeader, checkRow, csvLine, daysFromCivil, display, formatMicros, parseCount, parseTimestamp, sniffFormat } from "../../../src/log/check.js";

const enc = (s: string): Buffer => Buffer.from(s, "utf8");

describe("parseTimestamp", () => {
  test("the preload's own format, against Date", () => {
    const micros = Date.UTC(2026, 10, 24, 10, 30, 1, 123) * 1000 + 456;
    assert.equal(parseTimestamp("2026-11-24T10:30:01.123456+00:00"), micros);
    // Round trip with the writer's formatter, over a spread of instants (leap days, year ends, epoch).
    for (const ms of [0, Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(1999, 11, 31, 23, 59, 59), Date.UTC(2100, 0, 1), Date.UTC(2026, 2, 1, 0, 0, 0, 1)]) {
      for (const extra of [0, 1, 999]) {
        const m = ms * 1000 + extra;
        assert.equal(parseTimestamp(formatTimestamp(m)), m, formatTimestamp(m));
        assert.equal(formatMicros(m), formatTimestamp(m));
      }
    }
  });

  test("other ISO 8601 UTC forms: Z, no fraction, 1 to 9 fraction digits", () => {
    const base = Date.UTC(2026, 10, 24, 10, 30, 1) * 1000;
    assert.equal(parseTimestamp("2026-11-24T10:30:01Z"), base);
    assert.equal(parseTimestamp("2026-11-24T10:30:01+00:00"), base);
    assert.equal(parseTimestamp("2026-11-24T10:30:01.5+00:00"), base + 500_000);
    assert.equal(parseTimestamp("2026-11-24T10:30:01.123Z"), base + 123_000);
    assert.equal(parseTimestamp("2026-11-24T10:30:01.123456789+00:00"), base + 123_456);
  });

  test("what is wrong, in words", () => {
    const cases: [string, RegExp][] = [
      ["", /is empty/],
      ["2026-11-24 10:30:01.123456+00:00", /space between date and time/],
      ["1764000000", /Unix time/],
      ["2026-11-24T10:30:01.123456", /no UTC offset/],
      ["2026-11-24T10:30:01.123456+02:00", /not in UTC \(offset \+02:00\)/],
      ["2026-11-24T10:30:01-00:00", /write UTC as \+00:00/],
      ["2026-11-24T10:30:01+0000", /write UTC as \+00:00/],
      ["2026-02-29T10:30:01+00:00", /not a valid date/],
      ["2026-13-01T10:30:01+00:00", /not a valid date/],
      ["2026-11-24T24:00:00+00:00", /not a valid date/],
      ["2026-11-24T10:60:00+00:00", /not a valid date/],
      ["2026-11-24T10:30:60+00:00", /not a valid date/],
      [" 2026-11-24T10:30:01+00:00", /spaces around/],
      ["yesterday", /not an ISO 8601 timestamp/],
      ["2026-11-24t10:30:01z", /not an ISO 8601 timestamp/],
    ];
    for (const [text, why] of cases) {
      const r = parseTimestamp(text);
      assert.equal(typeof r, "string", text);
      assert.match(r as string, why, text);
    }
    assert.equal(typeof parseTimestamp("2024-02-29T00:00:00+00:00"), "number");
    assert.equal(typeof parseTimestamp("2000-02-29T00:00:00+00:00"), "number");
    assert.equal(typeof parseTimestamp("1900-02-29T00:00:00+00:00"), "string");
  });

  test("daysFromCivil agrees with Date.UTC", () => {
    for (let y = 1970; y <= 2400; y += 7) {
      for (const [m, d] of [[1, 1], [2, 28], [3, 1], [12, 31]] as const) {
        assert.equal(daysFromCivil(y, m, d), Date.UTC(y, m - 1, d) / 86_400_000, `${y}-${m}-${d}`);
      }
    }
  });
});

describe("parseCount", () => {
  test("non-negative integers", () => {
    assert.equal(parseCount("0", "PromptTokens"), 0);
    assert.equal(parseCount("123456", "PromptTokens"), 123456);
    assert.equal(parseCount("007", "PromptTokens"), 7);
    assert.equal(parseCount("9007199254740991", "PromptTokens"), Number.MAX_SAFE_INTEGER);
  });
  test("everything else, in words", () => {
    const cases: [string, RegExp][] = [
      ["", /PromptTokens is empty/],
      ["-1", /is negative/],
      ["1.5", /not a whole number/],
      ["1e3", /not a whole number/],
      [" 12", /spaces around/],
      ["12 ", /spaces around/],
      ["+3", /not a non-negative integer/],
      ["twelve", /not a non-negative integer/],
      ["9007199254740993", /too large/],
    ];
    for (const [text, why] of cases) {
      const r = parseCount(text, "PromptTokens");
      assert.equal(typeof r, "string", text);
      assert.match(r as string, why, text);
    }
  });
});

describe("checkHeader", () => {
  test("the exact header passes", () => {
    assert.equal(checkHeader([...HEADER_FIELDS]), undefined);
    assert.equal(HEADER_LINE, "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens");
  });
  test("each kind of wrong header gets its own explanation", () => {
    const cases: [string[], RegExp][] = [
      [["timestamputc", "model", "prompttokens", "completiontokens", "totaltokens"], /upper\/lower case/],
      [["TimestampUTC", " Model", "PromptTokens", "CompletionTokens", "TotalTokens"], /spaces around the column names/],
      [["Model", "TimestampUTC", "PromptTokens", "CompletionTokens", "TotalTokens"], /wrong order/],
      [["TimestampUTC;Model;PromptTokens;CompletionTokens;TotalTokens"], /uses ";"/],
      [["TimestampUTC\tModel\tPromptTokens\tCompletionTokens\tTotalTokens"], /tabs/],
      [["2026-11-24T10:30:01.123456+00:00", "m", "1", "2", "3"], /has no header: line 1 is a data row/],
      [["TimestampUTC", "Model", "PromptTokens", "CompletionTokens"], /has 4 columns, expected 5/],
      [["TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens", "Cost"], /6 columns, expected exactly 5/],
      [["Time", "Model", "PromptTokens", "CompletionTokens", "TotalTokens"], /column 1 is "Time", expected TimestampUTC/],
      [["TimestampUTC", "Model", "Prompt", "Completion", "Total"], /column 3 is "Prompt", expected PromptTokens/],
    ];
    for (const [fields, why] of cases) assert.match(checkHeader(fields) ?? "(passed)", why, fields.join("|"));
  });
});

describe("checkRow", () => {
  test("a valid row", () => {
    const r = checkRow(["2026-11-24T10:30:01.123456+00:00", "mistral-small-latest", "15", "8", "23"]);
    assert.equal(r.ok, true);
    assert.deepEqual(r.warnings, []);
    if (r.ok) {
      assert.deepEqual(r.row, {
        timestamp: "2026-11-24T10:30:01.123456+00:00",
        micros: Date.UTC(2026, 10, 24, 10, 30, 1, 123) * 1000 + 456,
        model: "mistral-small-latest",
        promptTokens: 15,
        completionTokens: 8,
        totalTokens: 23,
      });
    }
  });

  test("a total other than the sum is a warning, not an error (moderation, transcription)", () => {
    const r = checkRow(["2026-11-24T10:30:01.123456+00:00", "mistral-moderation-2411", "38", "0", "127"]);
    assert.equal(r.ok, true);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0] ?? "", /TotalTokens 127 is not PromptTokens \+ CompletionTokens \(38\)/);
  });

  test("Z is accepted with a warning (Python 3.10 rejects it)", () => {
    const r = checkRow(["2026-11-24T10:30:01Z", "m", "1", "2", "3"]);
    assert.equal(r.ok, true);
    assert.match(r.warnings[0] ?? "", /ends in Z/);
  });

  test("a fraction of other than 3 or 6 digits is accepted with a warning (Python 3.10 rejects it)", () => {
    for (const [text, warned] of [["2026-11-24T10:30:01.5+00:00", true], ["2026-11-24T10:30:01.123456789+00:00", true], ["2026-11-24T10:30:01.123+00:00", false], ["2026-11-24T10:30:01+00:00", false]] as const) {
      const r = checkRow([text, "m", "1", "2", "3"]);
      assert.equal(r.ok, true, text);
      assert.equal(r.warnings.length, warned ? 1 : 0, text);
      if (warned) assert.match(r.warnings[0] ?? "", /fractional digits; Python 3\.10/);
    }
  });

  test("every error of a row is listed", () => {
    const r = checkRow(["2026-11-24 10:30:01", " ", "-1", "x", "1.5"]);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.errors.length, 5);
      assert.match(r.errors.join("\n"), /space between date and time[\s\S]*Model is empty[\s\S]*negative[\s\S]*CompletionTokens "x"[\s\S]*not a whole number/);
    }
  });

  test("wrong field counts", () => {
    for (const fields of [["a"], ["2026-11-24T10:30:01Z", "m", "1", "2"], ["2026-11-24T10:30:01Z", "m", "1", "2", "3", "4"]]) {
      const r = checkRow(fields);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.errors[0] ?? "", new RegExp(`has ${fields.length} fields?, expected 5`));
    }
  });

  test("model names are taken as they are (quotes, commas, the formula guard)", () => {
    for (const model of ["a,b", 'say "hi"', "'=cmd", "日本🙂"]) {
      const r = checkRow(["2026-11-24T10:30:01.123456+00:00", model, "1", "2", "3"]);
      assert.equal(r.ok, true, model);
    }
  });
});

describe("sniffFormat", () => {
  test("recognises files that are not CSV at all", () => {
    const cases: [Buffer, RegExp][] = [
      [Buffer.alloc(0), /is empty/],
      [Buffer.from([0x1f, 0x8b, 8, 0]), /gzip/],
      [Buffer.from([0x50, 0x4b, 0x03, 0x04, 1, 2]), /ZIP archive/],
      [Buffer.from([0xff, 0xfe, 0x54, 0]), /UTF-16/],
      [Buffer.from([0x54, 0x00, 0x69]), /binary/],
      [enc('{"usage": {}}'), /JSON/],
      [enc('\n  [{"model": "x"}]'), /JSON/],
      [enc('\ufeff{"a":1}'), /JSON/],
    ];
    for (const [head, why] of cases) assert.match(sniffFormat(head).fatal ?? "(passed)", why);
  });
  test("a CSV passes; a BOM is a warning", () => {
    assert.deepEqual(sniffFormat(enc(`${HEADER_LINE}\n`)), { warnings: [] });
    const bom = sniffFormat(enc(`\ufeff${HEADER_LINE}\n`));
    assert.equal(bom.fatal, undefined);
    assert.match(bom.warnings[0] ?? "", /byte order mark/);
  });
});

describe("display and csvLine", () => {
  test("display quotes, escapes control characters and cuts long values", () => {
    assert.equal(display('a"b'), '"a\\"b"');
    assert.equal(display("\u001b[31mred"), '"\\u001b[31mred"');
    assert.equal(display("x".repeat(100), 10), `"${"x".repeat(10)}…"`);
  });
  test("csvLine quotes only what RFC 4180 needs", () => {
    assert.equal(csvLine(["a", "b,c", 'd"e', "f\ng", "h\ri"]), 'a,"b,c","d""e","f\ng","h\ri"\n');
  });
});
