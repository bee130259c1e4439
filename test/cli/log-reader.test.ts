/** readLog on real files: line numbers, line endings, fatal problems, the tail of a log. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readLog } from "../../src/cli/log-reader.js";
import type { FileResult, InvalidRecord, Problem } from "../../src/cli/log-reader.js";
import type { LogRow } from "../../src/log/check.js";
import { checkRow } from "../../src/log/check.js";
import { HEADER, tmp } from "./cli-helpers.js";

interface Read {
  result: FileResult;
  rows: [number, LogRow][];
  invalid: InvalidRecord[];
  problems: Problem[];
}

async function read(t: TestContext, content: string | Buffer, start?: number): Promise<Read> {
  const dir = await tmp(t);
  const file = join(dir, "log.csv");
  await writeFile(file, content);
  const rows: [number, LogRow][] = [];
  const invalid: InvalidRecord[] = [];
  const problems: Problem[] = [];
  const result = await readLog(
    file,
    { row: (r, line) => rows.push([line, r]), invalid: (r) => invalid.push(r), problem: (p) => problems.push(p) },
    start === undefined ? {} : { start },
  );
  return { result, rows, invalid, problems };
}

const R1 = "2026-11-24T10:30:01.123456+00:00,mistral-small-latest,15,8,23";
const R2 = "2026-11-24T10:31:05.654321+00:00,mistral-small-latest,35,150,185";

describe("readLog", () => {
  test("rows with their line numbers; quoted fields with line breaks keep later lines right", async (t) => {
    const text = [HEADER, R1, '2026-11-24T10:31:00.000000+00:00,"multi\nline, model",1,2,3', "bad,m,1,2,3", R2, ""].join("\n");
    const r = await read(t, text);
    assert.deepEqual(
      r.rows.map(([line, row]) => [line, row.model]),
      [
        [2, "mistral-small-latest"],
        [3, "multi\nline, model"],
        [6, "mistral-small-latest"],
      ],
    );
    assert.deepEqual(r.invalid, [{ line: 5, fields: ["bad", "m", "1", "2", "3"] }]);
    assert.deepEqual(
      r.problems.map((p) => [p.line, p.severity]),
      [[5, "error"]],
    );
    assert.equal(r.result.rows, 3);
    assert.equal(r.result.invalidRows, 1);
    assert.equal(r.result.fatal, undefined);
  });

  test("CRLF, LF and a mix of both (a CRLF header from an editor, LF rows from the preload)", async (t) => {
    for (const text of [`${HEADER}\r\n${R1}\r\n${R2}\r\n`, `${HEADER}\r\n${R1}\n${R2}\n`, `${HEADER}\n${R1}\r\n${R2}\n`]) {
      const r = await read(t, text);
      assert.equal(r.result.rows, 2, JSON.stringify(text));
      assert.equal(r.result.errors + r.result.warnings, 0, JSON.stringify(r.problems));
    }
  });

  test("a BOM and a missing final newline are warnings; blank lines too", async (t) => {
    const r = await read(t, `\ufeff${HEADER}\n${R1}\n\n${R2}`);
    assert.equal(r.result.rows, 2);
    assert.equal(r.result.errors, 0);
    assert.deepEqual(
      r.problems.map((p) => [p.line, p.message.slice(0, 20)]),
      [
        [1, "starts with a UTF-8 "],
        [3, "blank line"],
        [0, "the last line has no"],
      ],
    );
  });

  test("a CSV syntax error stops the reading (csv-parse would swallow the following lines)", async (t) => {
    const r = await read(t, [HEADER, R1, '2026-11-24T10:31:00.000000+00:00,"bad"x,1,2,3', R2, R2, ""].join("\n"));
    assert.equal(r.rows.length, 1);
    assert.match(r.result.fatal ?? "", /not valid CSV: a closing quote is followed by other characters/);
    assert.equal(r.result.fatalLine, 3);
  });

  test("whole-file problems are fatal", async (t) => {
    assert.equal((await read(t, "")).result.fatal?.startsWith("is empty"), true);
    assert.match((await read(t, '{"a":1}')).result.fatal ?? "", /JSON/);
    assert.match((await read(t, "Time,Model\nx,y\n")).result.fatal ?? "", /header "Time","Model"/);
    const dir = await tmp(t);
    const missing = await readLog(join(dir, "nope.csv"), {});
    assert.equal(missing.fatal, "no such file");
    await mkdir(join(dir, "d"));
    assert.match((await readLog(join(dir, "d"), {})).fatal ?? "", /is a directory/);
  });

  test("from an offset: the tail of a log, without a header", async (t) => {
    const head = `${HEADER}\n${R1}\n`;
    const r = await read(t, `${head}${R2}\n`, Buffer.byteLength(head));
    assert.deepEqual(
      r.rows.map(([, row]) => row.totalTokens),
      [185],
    );
    assert.equal(r.result.fatal, undefined);
    const none = await read(t, head, Buffer.byteLength(head));
    assert.equal(none.result.rows, 0);
    assert.equal(none.result.fatal, undefined);
  });

  test("line numbers agree with csv-parse's own count on a long file with odd records", async (t) => {
    const lines = [HEADER];
    for (let i = 0; i < 2000; i++) {
      if (i % 97 === 0) lines.push(`2026-11-24T10:31:00.000000+00:00,"a\nb\nc",1,2,3`);
      else if (i % 89 === 0) lines.push("");
      else if (i % 83 === 0) lines.push(`bad-${i},m,1,2,3`);
      else lines.push(R1);
    }
    const r = await read(t, `${lines.join("\n")}\n`);
    // Reconstruct the physical line of every bad row from the text itself.
    const expected: number[] = [];
    let physical = 1;
    for (const l of lines) {
      if (l.startsWith("bad-")) expected.push(physical);
      physical += l.split("\n").length;
    }
    assert.deepEqual(
      r.invalid.map((i) => i.line),
      expected,
    );
  });
});

describe("readLog's byte path agrees with the checks on strings", () => {
  test("rows near the preload's form: the same rows, errors and warnings as checkRow on their fields", async (t) => {
    // Every way a line can differ a little from what the preload writes.
    const timestamps = ["2026-11-24T10:30:01.123456+00:00", "2026-02-29T10:30:01.123456+00:00", "2026-11-24T24:00:01.123456+00:00", "2026-11-24T10:30:01.123456Z", "2026-11-24T10:30:01.12345+00:00", "0000-01-01T00:00:00.000000+00:00"];
    const models = ["mistral-small-2603", "", " ", "\t", " m ", "'=x", "café", "日本", "a b"];
    const counts = [
      ["15", "8", "23"],
      ["0", "0", "0"],
      ["007", "8", "15"],
      ["15", "8", "24"],
      ["-1", "2", "1"],
      ["1.5", "1", "2"],
      ["", "1", "1"],
      [" 3", "1", "4"],
      ["999999999999999", "1", "1000000000000000"],
      ["9999999999999999", "0", "9999999999999999"],
      ["12345678901234567890", "0", "1"],
    ];
    const lines: string[] = [];
    for (const ts of timestamps) for (const model of models) for (const [p, c, total] of counts) lines.push(`${ts},${model},${p},${c},${total}`);
    const r = await read(t, `${HEADER}\n${lines.join("\n")}\n`);
    const expected: { rows: [number, string, number][]; problems: string[] } = { rows: [], problems: [] };
    lines.forEach((line, i) => {
      const checked = checkRow(line.split(","));
      for (const w of checked.warnings) expected.problems.push(`${i + 2} warning ${w}`);
      if (checked.ok) expected.rows.push([i + 2, checked.row.model, checked.row.micros + checked.row.promptTokens + checked.row.totalTokens]);
      else for (const e of checked.errors) expected.problems.push(`${i + 2} error ${e}`);
    });
    assert.deepEqual(
      r.rows.map(([line, row]) => [line, row.model, row.micros + row.promptTokens + row.totalTokens]),
      expected.rows,
    );
    assert.deepEqual(
      r.problems.map((p) => `${p.line} ${p.severity} ${p.message}`),
      expected.problems,
    );
    // The timestamps as written, for the rows read from bytes too.
    for (const [line, row] of r.rows) assert.equal(row.timestamp, lines[line - 2]?.split(",")[0]);
  });
});
