/**
 * `mistral-usage report` run as a child process on logs the tests write. Its figures are checked
 * against sums and prices computed here, independently of src/cli.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { once } from "node:events";
import { join } from "node:path";
import { BASE_MICROS, HEADER, cli, random, tmp, ts, writeLog } from "./cli-helpers.js";
import type { Row } from "./cli-helpers.js";

/** Prices (USD per 1M tokens) as the reference file gives them, typed in here again on purpose. */
const PRICE: Record<string, [number, number]> = {
  "mistral-small-2603": [0.15, 0.6],
  "mistral-small-latest": [0.15, 0.6],
  "mistral-medium-latest": [1.5, 7.5],
  "mistral-large-2512": [0.5, 1.5],
  "codestral-2508": [0.3, 0.9],
  "mistral-embed": [0.1, 0],
  "ministral-8b-2512": [0.15, 0.15],
};
const UNKNOWN = "voxtral-mini-2507";
const MODELS = [...Object.keys(PRICE), UNKNOWN];


function makeRows(n: number, seed: number, start = BASE_MICROS): Row[] {
  const rnd = random(seed);
  const rows: Row[] = [];
  let micros = start;
  for (let i = 0; i < n; i++) {
    micros += Math.floor(rnd() * 3_600_000_000); // up to an hour apart: several days and hours
    const model = MODELS[Math.floor(rnd() * MODELS.length)] as string;
    const prompt = Math.floor(rnd() * 50_000);
    const completion = model === "mistral-embed" ? 0 : Math.floor(rnd() * 8_000);
    // Some totals differ from the sum, as moderation and transcription report them.
    const total = rnd() < 0.1 ? prompt * 3 : prompt + completion;
    rows.push({ ts: ts(micros), model, prompt, completion, total });
  }
  return rows;
}

interface Sums {
  calls: number;
  prompt: number;
  completion: number;
  total: number;
  cost: number;
  unpriced: number;
}

function sums(rows: readonly Row[]): Sums {
  const s: Sums = { calls: 0, prompt: 0, completion: 0, total: 0, cost: 0, unpriced: 0 };
  for (const r of rows) {
    s.calls++;
    s.prompt += r.prompt;
    s.completion += r.completion;
    s.total += r.total;
    const price = PRICE[r.model];
    if (price === undefined) s.unpriced++;
    else s.cost += (r.prompt * price[0] + r.completion * price[1]) / 1e6;
  }
  return s;
}

function groupBy(rows: readonly Row[], key: (r: Row) => string): Map<string, Sums> {
  const groups = new Map<string, Row[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return new Map([...groups].map(([k, v]) => [k, sums(v)]));
}

interface JsonGroup {
  model?: string;
  day?: string;
  hour?: string;
  calls: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  costUsd: number | null;
  unpricedCalls: number;
}
interface JsonReport {
  files: string[];
  by: string;
  first: string | null;
  last: string | null;
  groups: JsonGroup[];
  total: JsonGroup;
  unpricedModels: { model: string; calls: number }[];
  invalidRows: number;
  prices: { asOf: string; file: string | null };
}

function assertGroup(actual: JsonGroup | undefined, expected: Sums | undefined, label: string): void {
  assert.ok(actual && expected, label);
  assert.equal(actual.calls, expected.calls, label);
  assert.equal(actual.promptTokens, expected.prompt, label);
  assert.equal(actual.completionTokens, expected.completion, label);
  assert.equal(actual.totalTokens, expected.total, label);
  assert.equal(actual.unpricedCalls, expected.unpriced, label);
  if (expected.unpriced === expected.calls) assert.equal(actual.costUsd, null, label);
  else assert.ok(Math.abs((actual.costUsd ?? NaN) - expected.cost) < 1e-8, `${label}: ${actual.costUsd} vs ${expected.cost}`);
}

const num = (text: string): number => Number(text.replaceAll(",", ""));

describe("report", () => {
  test("--json by model, day and hour matches sums computed independently", async (t) => {
    const dir = await tmp(t);
    const rows = makeRows(400, 42);
    await writeLog(dir, "mistral_usage_log.csv", rows);
    for (const [by, key] of [
      ["model", (r: Row) => r.model],
      ["day", (r: Row) => r.ts.slice(0, 10)],
      ["hour", (r: Row) => `${r.ts.slice(0, 13)}:00`],
    ] as const) {
      const r = await cli(["report", "--json", "--by", by], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      const json = JSON.parse(r.stdout) as JsonReport;
      assert.equal(json.by, by);
      const expected = groupBy(rows, key);
      assert.equal(json.groups.length, expected.size);
      for (const g of json.groups) {
        const k = g[by] as string;
        assertGroup(g, expected.get(k), `${by} ${k}`);
      }
      assertGroup(json.total, sums(rows), `${by} total`);
      assert.equal(json.first, rows[0]?.ts);
      assert.equal(json.last, rows.at(-1)?.ts);
      assert.deepEqual(json.unpricedModels, [{ model: UNKNOWN, calls: sums(rows.filter((x) => x.model === UNKNOWN)).calls }]);
      if (by !== "model") assert.deepEqual(json.groups.map((g) => g[by]), [...expected.keys()].sort());
    }
  });

  test("the text table: the same figures, right-aligned, in 80 columns, n/a and not $0 for an unknown model", async (t) => {
    const dir = await tmp(t);
    const rows = makeRows(120, 7);
    await writeLog(dir, "mistral_usage_log.csv", rows);
    const r = await cli(["report"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    for (const l of lines) assert.ok(l.length <= 80, `${l.length}: ${l}`);
    assert.doesNotMatch(r.stdout, /\u001b\[/, "no colour when stdout is not a TTY");
    const byModel = groupBy(rows, (x) => x.model);
    const rowRe = /^(\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+(\S+)$/;
    let seen = 0;
    const costCol = new Set<number>();
    for (const l of lines) {
      const m = rowRe.exec(l);
      if (m === null || m[1] === "Model") continue;
      const [, label, calls, prompt, completion, total, cost] = m as unknown as string[];
      const expected = label === "Total" ? sums(rows) : byModel.get(label as string);
      assert.ok(expected, l);
      assert.deepEqual([num(calls as string), num(prompt as string), num(completion as string), num(total as string)], [expected.calls, expected.prompt, expected.completion, expected.total], l);
      if (label === UNKNOWN) assert.equal(cost, "n/a");
      else {
        assert.match(cost as string, /^\$[\d,]+\.\d{4}\*?$/);
        assert.ok(Math.abs(num((cost as string).replace(/[$*]/g, "")) - expected.cost) <= 0.00005 + 1e-12, `${l} vs ${expected.cost}`);
      }
      if (label === "Total") assert.ok((cost as string).endsWith("*"), "the total leaves the unknown model out, and says so");
      // Numbers are right-aligned: every number column ends at the same place.
      costCol.add(l.replace(/\*$/, "").length);
      seen++;
    }
    assert.equal(seen, byModel.size + 1);
    assert.equal(costCol.size, 1, "right-aligned cost column");
    assert.match(r.stdout, /\d+ calls from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    assert.match(r.stdout.replace(/\n  /g, " "), new RegExp(`n/a: no price known for ${UNKNOWN} \\(\\d+ calls?\\)`));
    assert.match(r.stdout, /as of 2026-10-06/);
  });

  test("several files add up; the same file twice is counted once", async (t) => {
    const dir = await tmp(t);
    const a = makeRows(50, 1);
    const b = makeRows(70, 2, BASE_MICROS + 7);
    await writeLog(dir, "a.csv", a);
    await writeLog(dir, "b.csv", b);
    const r = await cli(["report", "--json", "a.csv", "b.csv", "a.csv"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /a\.csv is the same file as a\.csv: counted once/);
    const json = JSON.parse(r.stdout) as JsonReport;
    assertGroup(json.total, sums([...a, ...b]), "total");
    assert.deepEqual(json.files, ["a.csv", "b.csv"]);
  });

  test("--since and --until", async (t) => {
    const dir = await tmp(t);
    const rows = makeRows(300, 9);
    await writeLog(dir, "mistral_usage_log.csv", rows);
    const day = rows[150]?.ts.slice(0, 10) as string;
    const since = `${day}T06:00`;
    const r = await cli(["report", "--json", "--since", since, "--until", day], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const from = Date.parse(`${since}Z`);
    const to = Date.parse(`${day}T00:00Z`) + 86_400_000;
    const inRange = rows.filter((x) => Date.parse(x.ts) >= from && Date.parse(x.ts) < to);
    assert.ok(inRange.length > 0 && inRange.length < rows.length);
    assertGroup((JSON.parse(r.stdout) as JsonReport).total, sums(inRange), "filtered total");
    const none = await cli(["report", "--since", "2099-01-01"], { cwd: dir });
    assert.equal(none.code, 0);
    assert.match(none.stdout, /No calls \(--since 2099-01-01\)\./);
  });

  test("--prices FILE: an override and a new model; n/a disappears", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "mistral_usage_log.csv", [
      { ts: ts(BASE_MICROS), model: "mistral-small-2603", prompt: 1_000_000, completion: 1_000_000, total: 2_000_000 },
      { ts: ts(BASE_MICROS + 1), model: UNKNOWN, prompt: 500_000, completion: 0, total: 500_000 },
    ]);
    await writeFile(join(dir, "prices.json"), JSON.stringify({ asOf: "2026-11-24", models: { "mistral-small-2603": { input: 0.1, output: 0.3 }, [UNKNOWN]: { input: 0.04, output: 0.04 } } }));
    const r = await cli(["report", "--json", "--prices", "prices.json"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const json = JSON.parse(r.stdout) as JsonReport;
    assert.ok(Math.abs((json.total.costUsd ?? NaN) - (0.1 + 0.3 + 0.02)) < 1e-12, String(json.total.costUsd));
    assert.deepEqual(json.unpricedModels, []);
    assert.equal(json.prices.file, "prices.json");
    const text = await cli(["report", "--prices", "prices.json"], { cwd: dir });
    assert.match(text.stdout.replace(/\n  /g, " "), /with prices\.json \(as of 2026-11-24\) on top/);
  });

  test("a --prices file that is missing, not JSON or the wrong shape is a usage error", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "mistral_usage_log.csv", makeRows(3, 3));
    await writeFile(join(dir, "notjson.json"), "input: 0.1\n");
    await writeFile(join(dir, "shape.json"), JSON.stringify({ models: { "mistral-small-2603": { in: 0.1, out: 0.3 } } }));
    const cases: [string, RegExp][] = [
      ["missing.json", /--prices missing\.json: no such file/],
      ["notjson.json", /--prices notjson\.json: not valid JSON/],
      ["shape.json", /--prices shape\.json: not a valid price table:\n {2}- models\["mistral-small-2603"\]: unknown key "in"[\s\S]*input must be a number/],
    ];
    for (const [file, why] of cases) {
      const r = await cli(["report", "--prices", file], { cwd: dir });
      assert.equal(r.code, 2, file);
      assert.match(r.stderr, why);
      assert.equal(r.stdout, "");
    }
  });

  test("bad input: a clear message, no report, exit 1", async (t) => {
    const dir = await tmp(t);
    await writeFile(join(dir, "data.json"), '[{"model":"x"}]');
    await writeFile(join(dir, "other.csv"), "time,model,tokens\n2026-01-01,x,3\n");
    await writeFile(join(dir, "binary.csv"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0x0d]));
    const cases: [string[], RegExp][] = [
      [[], /mistral_usage_log\.csv: no such file/],
      [["nope.csv"], /nope\.csv: no such file/],
      [["data.json"], /data\.json: looks like JSON, not CSV/],
      [["other.csv"], /other\.csv:1: header "time","model","tokens"/],
      [["binary.csv"], /binary\.csv: is a binary file/],
      [["."], /\.: is a directory/],
    ];
    for (const [args, why] of cases) {
      const r = await cli(["report", ...args], { cwd: dir });
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, why);
      assert.equal(r.stdout, "", "no partial report");
    }
  });

  test("invalid rows are skipped and counted, the report covers the rest, exit 1", async (t) => {
    const dir = await tmp(t);
    const rows = makeRows(20, 5);
    await writeLog(dir, "mistral_usage_log.csv", [...rows.slice(0, 10), "not-a-time,mistral-small-2603,1,2,3", "2026-11-24T10:30:01.000000+00:00,mistral-small-2603,-1,2,3", ...rows.slice(10)]);
    const r = await cli(["report", "--json"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /mistral_usage_log\.csv:12: skipped an invalid row/);
    assert.match(r.stderr, /mistral_usage_log\.csv:13: skipped an invalid row/);
    const json = JSON.parse(r.stdout) as JsonReport;
    assert.equal(json.invalidRows, 2);
    assertGroup(json.total, sums(rows), "total of the valid rows");
  });

  test("MISTRAL_USAGE_LOG is the default file", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "team.csv", makeRows(4, 11));
    const r = await cli(["report", "--json"], { cwd: dir, env: { MISTRAL_USAGE_LOG: "team.csv" } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as JsonReport).files, ["team.csv"]);
  });

  test("a million-row log, streamed: the heap is capped far below what holding the rows would need", { timeout: 300_000 }, async (t) => {
    const dir = await tmp(t);
    const file = join(dir, "big.csv");
    const out = createWriteStream(file);
    const expected: Sums = { calls: 0, prompt: 0, completion: 0, total: 0, cost: 0, unpriced: 0 };
    out.write(`${HEADER}\n`);
    let micros = BASE_MICROS;
    for (let i = 0; i < 1_000_000; i += 10_000) {
      let chunk = "";
      for (let j = i; j < i + 10_000; j++) {
        micros += 1_234_567;
        const model = j % 3 === 0 ? "mistral-small-2603" : "codestral-2508";
        const prompt = (j * 7) % 5000;
        const completion = (j * 13) % 700;
        chunk += `${ts(micros)},${model},${prompt},${completion},${prompt + completion}\n`;
        expected.calls++;
        expected.prompt += prompt;
        expected.completion += completion;
        expected.total += prompt + completion;
        const [pin, pout] = PRICE[model] as [number, number];
        expected.cost += (prompt * pin + completion * pout) / 1e6;
      }
      if (!out.write(chunk)) await once(out, "drain");
    }
    out.end();
    await once(out, "finish");
    // 1M rows held as objects would need well over 100 MB of heap; 48 MB is enough only when streaming.
    const r = await cli(["report", "--json", "big.csv"], { cwd: dir, nodeArgs: ["--max-old-space-size=48"], timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    assertGroup((JSON.parse(r.stdout) as JsonReport).total, expected, "million-row total");
  });
});
