/**
 * The defects found in `mistral-usage` by trying it as a hostile user would (issue 14). Each test
 * here failed before its fix.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../support/run-app.js";
import { BASE_MICROS, HEADER, cli, tmp, ts, writeLog } from "./cli-helpers.js";

const rowAt = (i: number, model = "mistral-small-2603"): string => `${ts(BASE_MICROS + i * 1_000_000)},${model},${10 + i},5,${15 + i}`;

describe("defects", () => {
  test("1. report never cuts a model name when stdout is not a terminal", async (t) => {
    const dir = await tmp(t);
    const a = "mistral-medium-2508-our-gateway-alias-for-the-eu-region-team-alpha";
    const b = "mistral-medium-2508-our-gateway-alias-for-the-eu-region-team-bravo";
    await writeLog(dir, "log.csv", [rowAt(0, a), rowAt(1, b), rowAt(2, b)]);
    const r = await cli(["report", "log.csv"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /…/);
    assert.match(r.stdout, new RegExp(`^${a}\\s+1\\s`, "m"));
    assert.match(r.stdout, new RegExp(`^${b}\\s+2\\s`, "m"));
  });

  test("2. a log with CR line endings (classic Mac) gets one short line saying so", async (t) => {
    const dir = await tmp(t);
    const rows = Array.from({ length: 200_000 }, (_, i) => rowAt(i));
    await writeFile(join(dir, "mac.csv"), `${[HEADER, ...rows].join("\r")}\r`);
    const r = await cli(["validate", "mac.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2, r.stdout.slice(0, 500));
    assert.match(lines[0] ?? "", /^mac\.csv: error: uses CR line endings .*LF or CRLF/);
    assert.ok((lines[0] ?? "").length < 200, `${(lines[0] ?? "").length} characters`);
    assert.equal(lines[1], "mac.csv: NOT VALID (stopped at the first problem)");
    const report = await cli(["report", "mac.csv"], { cwd: dir });
    assert.equal(report.code, 1);
    assert.match(report.stderr, /mac\.csv: uses CR line endings/);
    assert.ok(report.stderr.length < 400, report.stderr.slice(0, 400));
  });

  test("3. a Latin-1 file is not valid: each bad line is an error, and merge never turns its bytes into U+FFFD", async (t) => {
    const dir = await tmp(t);
    const latin1 = Buffer.concat([
      Buffer.from(`${HEADER}\n${rowAt(0)}\n${ts(BASE_MICROS + 1_000_000)},mod`),
      Buffer.from([0xe8, 0x6c, 0x65]), // "èle" in Latin-1
      Buffer.from(`-caf`),
      Buffer.from([0xe9]),
      Buffer.from(`,1,2,3\n${rowAt(2)}\n`),
    ]);
    await writeFile(join(dir, "latin1.csv"), latin1);
    const v = await cli(["validate", "latin1.csv"], { cwd: dir });
    assert.equal(v.code, 1);
    assert.match(v.stdout, /^latin1\.csv:3: error: not UTF-8: byte 0xE8 at column 37 .*save the file as UTF-8$/m);
    assert.match(v.stdout, /^latin1\.csv: NOT VALID \(3 rows, 1 invalid; 1 error\)$/m);

    const m = await cli(["merge", "-o", "out.csv", "latin1.csv"], { cwd: dir });
    assert.equal(m.code, 1);
    assert.match(m.stderr, /latin1\.csv:3: error: not UTF-8/);
    const out = await readFile(join(dir, "out.csv"));
    assert.equal(out.includes(Buffer.from("\ufffd")), false);
    assert.equal(out.toString(), `${HEADER}\n${rowAt(0)}\n${rowAt(2)}\n`);
    // Kept on request, byte for byte.
    const kept = await cli(["merge", "--keep-invalid", "-o", "kept.csv", "latin1.csv"], { cwd: dir });
    assert.equal(kept.code, 1);
    assert.deepEqual(await readFile(join(dir, "kept.csv")), latin1);
    const report = await cli(["report", "--json", "latin1.csv"], { cwd: dir });
    assert.equal((JSON.parse(report.stdout) as { invalidRows: number }).invalidRows, 1);
  });

  test("4. logs joined with cat: one error where the header repeats, pointing to merge", async (t) => {
    const dir = await tmp(t);
    const a = await writeLog(dir, "a.csv", [rowAt(0), rowAt(1)]);
    const b = await writeLog(dir, "b.csv", [rowAt(2)]);
    await writeFile(join(dir, "both.csv"), Buffer.concat([await readFile(a), await readFile(b)]));
    const r = await cli(["validate", "both.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.deepEqual(r.stdout.trimEnd().split("\n"), [
      "both.csv:4: error: the header line appears again: were logs joined with cat? Use mistral-usage merge to combine logs (one header, sorted, no duplicates)",
      "both.csv: NOT VALID (4 rows, 1 invalid; 1 error)",
    ]);
    // merge leaves the repeated header out and keeps every row.
    const m = await cli(["merge", "-o", "-", "both.csv"], { cwd: dir });
    assert.equal(m.stdout, `${HEADER}\n${rowAt(0)}\n${rowAt(1)}\n${rowAt(2)}\n`);
  });

  test("5. the package has a mistral-usage-log bin, and every npx example runs this package", async (t) => {
    const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { name: string; bin: Record<string, string> };
    assert.equal(pkg.bin["mistral-usage-log"], pkg.bin["mistral-usage"]);
    assert.equal(pkg.name, "mistral-usage-log");
    // `npx NAME` runs the package NAME when it is not installed: only `npx mistral-usage-log ...` is safe.
    const readme = await readFile(join(repoRoot, "README.md"), "utf8");
    const cwd = await tmp(t);
    const helps = await Promise.all(["--help", "report --help", "validate --help", "merge --help", "run --help"].map((a) => cli(a.split(" "), { cwd })));
    for (const [where, text] of [["README.md", readme], ...helps.map((h, i) => [`help ${i}`, h.stdout] as const)] as const) {
      for (const m of text.matchAll(/npx\s+(--?\S+\s+)*(mistral\S*)/g)) assert.equal(m[2], "mistral-usage-log", `${where}: ${m[0]}`);
    }
    assert.match(readme, /npx mistral-usage-log report/);
  });
});
