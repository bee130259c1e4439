/** `mistral-usage merge` as a child process, and its pure core. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { link, readFile, readdir, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { mergeEntries, mergeOrder } from "../../src/cli/merge.js";
import type { Entry } from "../../src/cli/merge.js";
import { BASE_MICROS, HEADER, cli, rowLine, tmp, ts, writeLog } from "./cli-helpers.js";
import type { Row } from "./cli-helpers.js";

function rowsFor(who: string, n: number, offset: number): Row[] {
  return Array.from({ length: n }, (_, i) => ({ ts: ts(BASE_MICROS + (i * 4 + offset) * 1_000_000), model: `model-${who}`, prompt: i + 1, completion: i, total: 2 * i + 1 }));
}

const lines = (text: string): string[] => text.trimEnd().split("\n");

describe("mergeEntries", () => {
  const e = (micros: number, text: string): Entry => ({ micros, text });
  test("sorted by time, stable for equal times, exact duplicates dropped", () => {
    const merged = mergeEntries([e(3, "c\n"), e(1, "a\n"), e(2, "b1\n"), e(2, "b2\n"), e(1, "a\n"), e(2, "b1\n")], ["x\n", "x\n"]);
    assert.equal([...merged.chunks].join(""), "a\nb1\nb2\nc\nx\n");
    assert.deepEqual(merged.count(), { rows: 5, duplicates: 3 });
  });
  test("count() before the chunks are read is a bug", () => {
    assert.throws(() => mergeEntries([]).count());
  });
});

describe("merge", () => {
  test("four team members' logs: one header, every row, sorted by time", async (t) => {
    const dir = await tmp(t);
    const team = ["ana", "bo", "cy", "di"];
    const all: Row[] = [];
    for (const [i, who] of team.entries()) {
      const rows = rowsFor(who, 25, i);
      all.push(...rows);
      await writeLog(dir, `${who}.csv`, rows);
    }
    const r = await cli(["merge", "-o", "mistral_usage_log.csv", ...team.map((w) => `${w}.csv`)], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "mistral-usage: 100 rows from 4 files written to mistral_usage_log.csv\n");
    const out = lines(await readFile(join(dir, "mistral_usage_log.csv"), "utf8"));
    assert.equal(out[0], HEADER);
    assert.equal(out.filter((l) => l === HEADER).length, 1);
    assert.deepEqual(out.slice(1), [...all].sort((a, b) => (a.ts < b.ts ? -1 : 1)).map(rowLine));
    // The result passes validate.
    assert.equal((await cli(["validate", "mistral_usage_log.csv"], { cwd: dir })).code, 0);
  });

  test("the same file given twice: duplicates dropped and counted", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", rowsFor("a", 10, 0));
    await writeLog(dir, "b.csv", rowsFor("b", 5, 1));
    const r = await cli(["merge", "-o", "out.csv", "a.csv", "b.csv", "a.csv"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /15 rows from 3 files written to out\.csv \(10 duplicate rows dropped\)/);
    assert.equal(lines(await readFile(join(dir, "out.csv"), "utf8")).length, 16);
  });

  test("rows with the same timestamp but different content are both kept", async (t) => {
    const dir = await tmp(t);
    const same = ts(BASE_MICROS);
    await writeLog(dir, "a.csv", [`${same},m,1,2,3`]);
    await writeLog(dir, "b.csv", [`${same},m,1,2,4`, `${same},m,1,2,3`]);
    const r = await cli(["merge", "-o", "-", "a.csv", "b.csv"], { cwd: dir });
    assert.deepEqual(lines(r.stdout), [HEADER, `${same},m,1,2,3`, `${same},m,1,2,4`]);
  });

  test("-o - writes to stdout; the summary goes to stderr", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", rowsFor("a", 3, 0));
    const r = await cli(["merge", "-o", "-", "a.csv"], { cwd: dir });
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), [HEADER, ...rowsFor("a", 3, 0).map(rowLine)]);
    assert.match(r.stderr, /3 rows from 1 file written to stdout/);
  });

  test("invalid rows are reported and left out (exit 1), or kept with --keep-invalid", async (t) => {
    const dir = await tmp(t);
    const good = rowsFor("a", 3, 0);
    await writeLog(dir, "a.csv", [rowLine(good[0] as Row), "yesterday,m,1,2,3", rowLine(good[1] as Row), `${ts(BASE_MICROS + 1)},m,-5,2,3`, rowLine(good[2] as Row)]);
    const left = await cli(["merge", "-o", "out.csv", "a.csv"], { cwd: dir });
    assert.equal(left.code, 1);
    assert.match(left.stderr, /^mistral-usage: a\.csv:3: error: TimestampUTC "yesterday" is not an ISO 8601 timestamp/m);
    assert.match(left.stderr, /^mistral-usage: a\.csv:5: error: PromptTokens "-5" is negative/m);
    assert.match(left.stderr, /3 rows from 1 file written to out\.csv \(2 invalid rows left out\)/);
    assert.deepEqual(lines(await readFile(join(dir, "out.csv"), "utf8")), [HEADER, ...good.map(rowLine)]);

    const kept = await cli(["merge", "--keep-invalid", "-o", "kept.csv", "a.csv"], { cwd: dir });
    assert.equal(kept.code, 1);
    assert.match(kept.stderr, /5 rows from 1 file written to kept\.csv \(2 invalid rows kept\)/);
    // The row with a readable time sorts with the others; the one without goes last.
    assert.deepEqual(lines(await readFile(join(dir, "kept.csv"), "utf8")), [HEADER, rowLine(good[0] as Row), `${ts(BASE_MICROS + 1)},m,-5,2,3`, rowLine(good[1] as Row), rowLine(good[2] as Row), "yesterday,m,1,2,3"]);
  });

  test("quoted fields stay quoted; CRLF inputs come out LF", async (t) => {
    const dir = await tmp(t);
    await writeFile(join(dir, "a.csv"), `${HEADER}\r\n${ts(BASE_MICROS)},"a, ""b""",1,2,3\r\n`);
    const r = await cli(["merge", "-o", "-", "a.csv"], { cwd: dir });
    assert.equal(r.stdout, `${HEADER}\n${ts(BASE_MICROS)},"a, ""b""",1,2,3\n`);
  });

  test("counts with leading zeros come out plain, whatever form the row's timestamp has", async (t) => {
    const dir = await tmp(t);
    // A `Z` timestamp is read by the slow path, a `+00:00` one by the byte scanner: both write `7`.
    await writeFile(join(dir, "a.csv"), `${HEADER}\n2026-01-01T00:00:00.000001Z,m,007,8,15\n2026-01-01T00:00:00.000002+00:00,m,007,8,15\n`);
    const r = await cli(["merge", "-o", "-", "a.csv"], { cwd: dir });
    assert.equal(r.stdout, `${HEADER}\n2026-01-01T00:00:00.000001Z,m,7,8,15\n2026-01-01T00:00:00.000002+00:00,m,7,8,15\n`);
  });

  test("never overwrites an input: same name, symlink or hard link", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", rowsFor("a", 2, 0));
    await writeLog(dir, "b.csv", rowsFor("b", 2, 1));
    await symlink(join(dir, "a.csv"), join(dir, "sym.csv"));
    await link(join(dir, "a.csv"), join(dir, "hard.csv"));
    const before = await readFile(join(dir, "a.csv"), "utf8");
    for (const out of ["a.csv", "./a.csv", join(dir, "a.csv"), "sym.csv", "hard.csv"]) {
      const r = await cli(["merge", "-o", out, "a.csv", "b.csv"], { cwd: dir });
      assert.equal(r.code, 2, out);
      assert.match(r.stderr, /merge never overwrites an input/);
    }
    assert.equal(await readFile(join(dir, "a.csv"), "utf8"), before);
  });

  test("an input that is not a log: nothing is written, exit 1", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", rowsFor("a", 2, 0));
    await writeFile(join(dir, "b.json"), "{}");
    await writeFile(join(dir, "out.csv"), "previous content\n");
    const r = await cli(["merge", "-o", "out.csv", "a.csv", "b.json", "missing.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^mistral-usage: b\.json: error: looks like JSON/m);
    assert.match(r.stderr, /^mistral-usage: missing\.csv: error: no such file$/m);
    assert.equal(r.stderr.match(/b\.json/g)?.length, 1, "each problem once");
    assert.match(r.stderr, /nothing written to out\.csv/);
    assert.equal(await readFile(join(dir, "out.csv"), "utf8"), "previous content\n");
  });

  test("OUT is replaced whole, and no temporary file is left behind", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", rowsFor("a", 2, 0));
    await writeFile(join(dir, "out.csv"), "old\n".repeat(1000));
    const r = await cli(["merge", "-o", "out.csv", "a.csv"], { cwd: dir });
    assert.equal(r.code, 0);
    assert.equal(lines(await readFile(join(dir, "out.csv"), "utf8")).length, 3);
    assert.deepEqual((await readdir(dir)).sort(), ["a.csv", "out.csv"]);
    assert.ok((await stat(join(dir, "out.csv"))).isFile());
  });

  test("-o into a folder that does not exist is a usage error", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", rowsFor("a", 1, 0));
    const r = await cli(["merge", "-o", "no/such/out.csv", "a.csv"], { cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /does not exist/);
  });
});

describe("mergeOrder", () => {
  /** What a stable sort by time gives, without exact duplicates. */
  function reference(micros: number[], lines: string[]): number[] {
    const sorted = micros.map((_, i) => i).sort((a, b) => (micros[a] as number) - (micros[b] as number) || a - b);
    const out: number[] = [];
    for (const i of sorted) {
      if (out.some((j) => micros[j] === micros[i] && lines[j] === lines[i])) continue;
      out.push(i);
    }
    return out;
  }
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

  test("agrees with a stable sort on sorted, nearly sorted (interleaved runs), reversed and random input", () => {
    const shapes: Record<string, (i: number, n: number) => number> = {
      sorted: (i) => i * 10,
      "four logs one after the other": (i, n) => ((i * 4) % n) * 10 + Math.floor((i * 4) / n),
      "processes appending side by side": (i) => i * 10 + Math.floor(rnd() * 30),
      reversed: (i, n) => (n - i) * 10,
      random: () => Math.floor(rnd() * 50),
    };
    for (const [shape, at] of Object.entries(shapes)) {
      for (const n of [0, 1, 2, 37, 500]) {
        const micros = Array.from({ length: n }, (_, i) => at(i, n));
        // Some equal times, some exact duplicates, and more than 16 rows at one instant in "random".
        const lines = micros.map((m, i) => `${m},${i % 3 === 0 ? "same" : `row${i}`}\n`);
        const got = mergeOrder(micros, n, { same: (i, j) => lines[i] === lines[j], key: (i) => lines[i] as string });
        const expected = reference(micros, lines);
        assert.deepEqual([...got.order.subarray(0, got.length)], expected, `${shape} ${n}`);
        assert.equal(got.duplicates, n - expected.length, `${shape} ${n}`);
      }
    }
  });
});
