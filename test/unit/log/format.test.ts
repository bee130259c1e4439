import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HEADER_FIELDS, HEADER_LINE, formatRows, escapeControls, formatTimestamp, guardFormula } from "../../../src/log/format.js";
import type { UsageEvent } from "../../../src/record/usage-event.js";

// --- helpers --------------------------------------------------------------------------------------

const T = Date.UTC(2026, 10, 24, 10, 30, 1, 123) * 1000 + 456; // 2026-11-24T10:30:01.123456Z

function row(model: string, prompt = 19, completion = 2, total = 21, epochMicros = T): UsageEvent {
  return {
    epochMicros,
    endpoint: "chat",
    server: { address: "api.mistral.ai", port: 443 },
    requestModel: undefined,
    responseModel: model,
    counts: { promptTokens: prompt, completionTokens: completion, totalTokens: total },
  };
}

/**
 * A strict RFC 4180 reader: records end in LF (what formatRows writes); a field containing a comma,
 * quote, CR or LF must be quoted, and a quote may only open a field. Throws on anything else.
 */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = "";
  let i = 0;
  const endField = () => {
    record.push(field);
    field = "";
  };
  while (i < text.length) {
    if (text[i] === '"' && field === "") {
      // A quoted field runs to the next lone quote.
      i++;
      for (;;) {
        if (i >= text.length) throw new Error("unterminated quoted field");
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += text[i++];
      }
      if (i < text.length && text[i] !== "," && text[i] !== "\n") throw new Error(`text after a closing quote at ${i}`);
      continue;
    }
    const c = text[i++]!;
    if (c === ",") endField();
    else if (c === "\n") {
      endField();
      records.push(record);
      record = [];
    } else if (c === '"' || c === "\r") throw new Error(`unquoted ${JSON.stringify(c)} at ${i - 1}`);
    else field += c;
  }
  if (field !== "" || record.length > 0) throw new Error("last record does not end in a newline");
  return records;
}

/** Microseconds since the epoch, read back from a formatted timestamp. */
function parseTimestamp(text: string): number {
  return Date.parse(`${text.slice(0, 23)}Z`) * 1000 + Number(text.slice(23, 26));
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$/;

// --- tests ----------------------------------------------------------------------------------------

describe("header", () => {
  test("the mandatory columns, in the mandatory order", () => {
    assert.deepEqual([...HEADER_FIELDS], ["TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens"]);
    assert.equal(HEADER_LINE, "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens");
  });
});

describe("formatRows", () => {
  test("one row, as the guide's example", () => {
    assert.equal(formatRows([row("mistral-small-latest")]), "2026-11-24T10:30:01.123456+00:00,mistral-small-latest,19,2,21\n");
  });

  test("several rows, in order, each ending in LF", () => {
    const text = formatRows([
      row("mistral-small-latest", 15, 8, 23, 1_698_402_601_123_456),
      row("mistral-moderation-2411", 38, 0, 127, 1_698_402_665_654_321),
      row("mistral-embed", 6, 0, 6, 1_698_402_730_987_654),
    ]);
    assert.equal(
      text,
      "2023-10-27T10:30:01.123456+00:00,mistral-small-latest,15,8,23\n" +
        "2023-10-27T10:31:05.654321+00:00,mistral-moderation-2411,38,0,127\n" +
        "2023-10-27T10:32:10.987654+00:00,mistral-embed,6,0,6\n",
    );
  });

  test("no rows, no text", () => {
    assert.equal(formatRows([]), "");
  });

  test("counts are written as reported, large ones without exponent", () => {
    assert.equal(formatRows([row("voxtral-mini-tts-2603", 56, 94080, 94136)]).split(",").slice(2).join(","), "56,94080,94136\n");
    const big = Number.MAX_SAFE_INTEGER;
    assert.equal(formatRows([row("m", big, 0, big)]).trimEnd().split(",").slice(2).join(","), `${big},0,${big}`);
  });

  describe("quoting (RFC 4180)", () => {
    const exact: Array<[string, string]> = [
      ["a,b", '"a,b"'],
      ['say "hi"', '"say ""hi"""'],
      ['"', '""""'],
      ['a,"b"\n', '"a,""b""\\n"'],
    ];
    for (const [model, field] of exact) {
      test(`${JSON.stringify(model)} is written as ${field}`, () => {
        assert.equal(formatRows([row(model)]), `2026-11-24T10:30:01.123456+00:00,${field},19,2,21\n`);
      });
    }

    const models = [
      "mistral-small-latest",
      "a,b",
      'say "hi"',
      ",\",",
      "日本語-模型-😀",
      " leading space",
      "trailing space ",
      "'already quoted'",
      "back\\slash",
      "",
    ];
    for (const model of models) {
      test(`${JSON.stringify(model)} reads back as a 5-field record with the same model`, () => {
        const records = parseCsv(formatRows([row(model), row("next-row")]));
        assert.equal(records.length, 2);
        assert.deepEqual(records[0], ["2026-11-24T10:30:01.123456+00:00", model, "19", "2", "21"]);
        assert.deepEqual(records[1], ["2026-11-24T10:30:01.123456+00:00", "next-row", "19", "2", "21"]);
      });
    }
  });

  describe("control characters are escaped: the log is text, on one line per row", () => {
    const escaped: Array<[string, string]> = [
      ["line\nbreak", "line\\nbreak"],
      ["cr\ronly", "cr\\ronly"],
      ["crlf\r\ninside", "crlf\\r\\ninside"],
      ["tab\tinside", "tab\\tinside"],
      ["nul\u0000byte", "nul\\x00byte"],
      ["\u001b[31mred\u001b[0m", "\\x1b[31mred\\x1b[0m"],
      ["bell\u0007", "bell\\x07"],
      ["del\u007f", "del\\x7f"],
      ["c1-csi\u009b2J", "c1-csi\\x9b2J"],
      ["c1-nel\u0085", "c1-nel\\x85"],
      ["\tcmd", "\\tcmd"],
      ["\rcmd", "\\rcmd"],
      // Printable non-ASCII stays as it is: only U+0080 to U+009F are controls.
      ["no-break\u00a0space-é", "no-break\u00a0space-é"],
    ];
    for (const [model, logged] of escaped) {
      test(`${JSON.stringify(model)} is written as ${JSON.stringify(logged)}`, () => {
        assert.equal(escapeControls(model), logged);
        const text = formatRows([row(model)]);
        assert.equal(text, `2026-11-24T10:30:01.123456+00:00,${logged},19,2,21\n`);
        assert.doesNotMatch(text.slice(0, -1), /[\u0000-\u001f\u007f-\u009f]/);
      });
    }

    test("escaping keeps the quoting and the formula guard", () => {
      assert.equal(formatRows([row('=A1\u001b,"x"')]), `2026-11-24T10:30:01.123456+00:00,"'=A1\\x1b,""x""",19,2,21\n`);
      assert.equal(formatRows([row("@\n")]), "2026-11-24T10:30:01.123456+00:00,'@\\n,19,2,21\n");
    });
  });

  describe("formula guard", () => {
    const guarded = ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(A1:A2)", "=HYPERLINK(\"http://x\",\"y\")", "-mistral"];
    for (const model of guarded) {
      test(`${JSON.stringify(model)} gets a leading '`, () => {
        assert.equal(guardFormula(model), `'${model}`);
        const [record] = parseCsv(formatRows([row(model)]));
        assert.equal(record?.[1], `'${model}`);
      });
    }

    test("guardFormula itself still guards a leading tab or CR (the log escapes them first)", () => {
      assert.equal(guardFormula("\tmodel"), "'\tmodel");
      assert.equal(guardFormula("\rmodel"), "'\rmodel");
    });

    const unguarded = ["mistral-small-latest", "open-mistral-7b", "ft:open-mistral-7b:abc", " =x", "a=b", "'=x", "", "１+1"];
    for (const model of unguarded) {
      test(`${JSON.stringify(model)} is left alone`, () => {
        assert.equal(guardFormula(model), model);
      });
    }

    test("a guarded model with a quote is both guarded and quoted", () => {
      assert.equal(formatRows([row('=HYPERLINK("x")')]), '2026-11-24T10:30:01.123456+00:00,"\'=HYPERLINK(""x"")",19,2,21\n');
    });
  });
});

describe("formatTimestamp", () => {
  const exact: Array<[number, string]> = [
    [0, "1970-01-01T00:00:00.000000+00:00"],
    [5, "1970-01-01T00:00:00.000005+00:00"],
    [999, "1970-01-01T00:00:00.000999+00:00"],
    [1000, "1970-01-01T00:00:00.001000+00:00"],
    [1_000_001, "1970-01-01T00:00:01.000001+00:00"],
    [T, "2026-11-24T10:30:01.123456+00:00"],
    [Date.UTC(2026, 0, 1) * 1000 - 1, "2025-12-31T23:59:59.999999+00:00"],
    [Date.UTC(2028, 1, 29, 12) * 1000 + 5, "2028-02-29T12:00:00.000005+00:00"],
    [Date.UTC(2099, 11, 31, 23, 59, 59, 999) * 1000 + 999, "2099-12-31T23:59:59.999999+00:00"],
  ];
  for (const [micros, text] of exact) {
    test(`${micros} → ${text}`, () => {
      assert.equal(formatTimestamp(micros), text);
      assert.match(text, TIMESTAMP);
    });
  }

  test("always six fractional digits and +00:00, and round-trips", () => {
    const base = Date.UTC(2026, 7, 21, 9, 12, 44) * 1000;
    const values = [0, 1, 5, 10, 99, 100, 999, 1000, 1001, 999_999, 123_456, 500_005];
    for (const offset of values) {
      const micros = base + offset;
      const text = formatTimestamp(micros);
      assert.match(text, TIMESTAMP, text);
      assert.equal(parseTimestamp(text), micros, text);
    }
  });

  test("the current time round-trips", () => {
    const micros = Date.now() * 1000 + 5;
    const text = formatTimestamp(micros);
    assert.match(text, TIMESTAMP);
    assert.equal(parseTimestamp(text), micros);
  });
});
