/** The byte scanner against csv-parse (what the reader used before): same records, same errors, same lines. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parse } from "csv-parse/sync";
import { LogScanner, STOPPED, firstInvalidUtf8 } from "../../../src/log/scan.js";
import type { ScanHandler } from "../../../src/log/scan.js";
import { formatTimestamp } from "../../../src/log/format.js";
import { random } from "../../cli/cli-helpers.js";

interface Seen {
  records: [number, string[]][];
  error?: [string, number];
}

/** What the scanner reads from `text`, fed in pieces of `piece` bytes (as the reader's chunks would be). */
function scanned(input: Buffer, piece: number, header = true): Seen {
  const seen: Seen = { records: [] };
  const handler: ScanHandler = {
    row(micros, model, p, c, t, line) {
      seen.records.push([line, [formatTimestamp(micros), model, String(p), String(c), String(t)]]);
    },
    record(fields, line) {
      seen.records.push([line, fields]);
    },
    notUtf8(line) {
      seen.records.push([line, ["(not utf-8)"]]);
    },
    syntaxError(code, line) {
      seen.error = [code, line];
    },
  };
  const scanner = new LogScanner(handler, { header });
  // Feed growing prefixes, as the reader does: unread bytes stay in front of the new ones.
  let pos = 0;
  for (let have = Math.min(piece, input.length); ; have = Math.min(have + piece, input.length)) {
    const eof = have === input.length;
    const next = scanner.scan(input, pos, have, eof);
    if (next === STOPPED) break;
    pos = next;
    if (eof) break;
  }
  return seen;
}

/** What csv-parse (with the old reader's options) reads before its first error. */
function parsed(input: Buffer): Seen {
  const seen: Seen = { records: [] };
  let line = 1;
  try {
    parse(input, {
      bom: true,
      record_delimiter: ["\r\n", "\n"],
      relax_column_count: true,
      skip_records_with_error: true,
      on_skip: (err) => {
        if (seen.error === undefined && err !== undefined) seen.error = [err.code, (err as unknown as { lines: number }).lines];
        return undefined;
      },
      on_record: (fields: string[]) => {
        if (seen.error === undefined) {
          seen.records.push([line, fields]);
          line += 1 + fields.reduce((n, f) => n + f.split("\n").length - 1, 0);
        }
        return fields;
      },
    });
  } catch (err) {
    const e = err as { code: string; lines: number };
    if (seen.error === undefined) seen.error = [e.code, e.lines];
  }
  return seen;
}


const ROW = "2026-11-24T10:30:01.123456+00:00,mistral-small-2603,15,8,23";
const PIECES = ["a", "b", ",", ",", '"', '""', "\n", "\r\n", "\r", "é", "1", " ", ROW, "2026-11-24T10:30:01Z"];

describe("LogScanner", () => {
  test("the preload's rows are read from bytes; everything else as fields", () => {
    const text = `H,e,a,d,er\n${ROW}\n${ROW.replace("15", "015")}\n"q",x\n`;
    const seen = scanned(Buffer.from(text), 7);
    assert.deepEqual(seen.records, [
      [1, ["H", "e", "a", "d", "er"]],
      [2, ROW.split(",")],
      [3, ROW.split(",")],
      [4, ["q", "x"]],
    ]);
  });

  test("model names that share their length and first, middle and last bytes are told apart", () => {
    const models = ["mistral-small-2603", "mistral-small-2503", "mistral-small-2603", "mistral-smalX-2603", "mistral-small-2503"];
    const text = `h\n${models.map((m) => ROW.replace("mistral-small-2603", m)).join("\n")}\n`;
    const seen = scanned(Buffer.from(text), 1 << 20);
    assert.deepEqual(
      seen.records.slice(1).map(([, f]) => f[1]),
      models,
    );
  });

  test("an empty or blank model goes to the checks (which say it is empty)", () => {
    for (const model of ["", " ", "\t"]) {
      const line = ROW.replace("mistral-small-2603", model);
      const paths: string[] = [];
      const scanner = new LogScanner(
        { row: () => paths.push("row"), record: (fields) => paths.push(`record ${JSON.stringify(fields)}`), notUtf8: () => paths.push("not utf-8"), syntaxError: () => paths.push("error") },
        { header: false },
      );
      scanner.scan(Buffer.from(`${line}\n${ROW}\n`), 0, line.length + ROW.length + 2, true);
      assert.deepEqual(paths, [`record ${JSON.stringify(line.split(","))}`, "row"], JSON.stringify(model));
    }
  });

  test("invalid dates and times in the preload's form go to the checks", () => {
    for (const ts of ["2026-02-29T10:30:01.123456+00:00", "2026-11-24T24:30:01.123456+00:00", "2026-11-24T10:60:01.123456+00:00", "2026-13-24T10:30:01.123456+00:00"]) {
      const seen = scanned(Buffer.from(`h\n${ts},m,1,2,3\n`), 1 << 20);
      assert.deepEqual(seen.records[1], [2, [ts, "m", "1", "2", "3"]], ts);
    }
  });

  test("same records, errors and lines as csv-parse on 3,000 generated inputs, in any chunking", () => {
    const rnd = random(1234);
    for (let n = 0; n < 3000; n++) {
      let text = "";
      const parts = 1 + Math.floor(rnd() * 24);
      for (let i = 0; i < parts; i++) text += PIECES[Math.floor(rnd() * PIECES.length)];
      const input = Buffer.from(text);
      const expected = parsed(input);
      const got = scanned(input, 1 + Math.floor(rnd() * 40), true);
      // Error lines as csv-parse counts them, except where it counts a CR inside quotes as a line
      // or names the end of the file for a quote never closed (the scanner names where it opens).
      if (expected.error !== undefined && got.error !== undefined && (text.includes("\r") || expected.error[0] === "CSV_QUOTE_NOT_CLOSED")) got.error[1] = expected.error[1];
      assert.deepEqual(got, expected, JSON.stringify(text));
    }
  });

  test("error lines: where the bad character is; for a quote never closed, where it opens", () => {
    const cases: [string, string, number][] = [
      ['h\n"a\r\nb"x\n', "CSV_INVALID_CLOSING_QUOTE", 3],
      ['h\nok\n"a\r\nb"x\n', "CSV_INVALID_CLOSING_QUOTE", 4],
      ['h\nx,"a\nb\nc\n', "CSV_QUOTE_NOT_CLOSED", 2],
      ['h\nx\ny"z\n', "INVALID_OPENING_QUOTE", 3],
    ];
    for (const [text, code, line] of cases) assert.deepEqual(scanned(Buffer.from(text), 3).error, [code, line], JSON.stringify(text));
  });

  test("a record that is not UTF-8 is reported with its first bad byte", () => {
    const input = Buffer.concat([Buffer.from("h\n2026-11-24T10:30:01.123456+00:00,caf"), Buffer.from([0xe9]), Buffer.from(",1,2,3\nok\n")]);
    const seen = scanned(input, 1 << 20);
    assert.deepEqual(seen.records, [
      [1, ["h"]],
      [2, ["(not utf-8)"]],
      [3, ["ok"]],
    ]);
    assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xc3, 0xa9, 0xe9, 0x62])), 3);
    assert.equal(firstInvalidUtf8(Buffer.from([0xf0, 0x9f, 0x99])), 0);
  });
});
