/** `mistral-usage validate` as a child process: problems with file and line, a verdict, exit codes. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HEADER, assertBuilt, cli, cliPath, tmp, writeLog } from "./cli-helpers.js";

const OK1 = "2026-11-24T10:30:01.123456+00:00,mistral-small-latest,15,8,23";
const OK2 = "2026-11-24T10:31:05.654321+00:00,mistral-small-2603,35,150,185";
const hasPython = spawnSync("python3", ["-c", "import csv, datetime"], { stdio: "ignore" }).status === 0;

describe("validate", () => {
  test("a valid log: one verdict line, exit 0", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "mistral_usage_log.csv", [OK1, OK2]);
    const r = await cli(["validate"], { cwd: dir });
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.stdout, "mistral_usage_log.csv: valid (2 rows)\n");
    assert.equal(r.stderr, "");
  });

  test("an empty log (header only) is valid", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", []);
    const r = await cli(["validate", "log.csv"], { cwd: dir });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, "log.csv: valid (0 rows)\n");
  });

  test("a total other than the sum is a warning: still valid, exit 0", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", [OK1, "2026-11-24T10:32:00.000000+00:00,mistral-moderation-2411,38,0,127"]);
    const r = await cli(["validate", "log.csv"], { cwd: dir });
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      "log.csv:3: warning: TotalTokens 127 is not PromptTokens + CompletionTokens (38); the API reports such totals for some endpoints\nlog.csv: valid (2 rows, 1 warning)\n",
    );
  });

  test("each problem with its file and line; the verdict counts them; exit 1", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", [
      OK1,
      "2026-11-24 10:30:01,mistral-small-latest,15,8,23", // 3: space instead of T
      "2026-11-24T10:30:01.123456+02:00,mistral-small-latest,15,8,23", // 4: not UTC
      "2026-11-24T10:30:01.123456+00:00,,15,8,23", // 5: empty model
      "2026-11-24T10:30:01.123456+00:00,m,-1,8.5,x", // 6: three bad counts
      "2026-11-24T10:30:01.123456+00:00,m,1,2", // 7: 4 fields
      "2026-11-24T10:30:01.123456+00:00,m,1,2,3,4", // 8: 6 fields
      '2026-11-24T10:30:01.123456+00:00,"quoted, model",1,2,3', // 9: fine
      OK2,
    ]);
    const r = await cli(["validate", "log.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    const lines = r.stdout.trimEnd().split("\n");
    assert.deepEqual(
      lines.map((l) => /^log\.csv:(\d+): (error|warning): /.exec(l)?.slice(1, 3).join(" ") ?? l),
      ["3 error", "4 error", "5 error", "6 error", "6 error", "6 error", "7 error", "8 error", "log.csv: NOT VALID (9 rows, 6 invalid; 8 errors)"],
    );
    assert.match(lines[0] ?? "", /space between date and time/);
    assert.match(lines[1] ?? "", /not in UTC \(offset \+02:00\)/);
    assert.match(lines[2] ?? "", /Model is empty/);
    assert.match(lines[6] ?? "", /has 4 fields, expected 5/);
  });

  test("the header must be exact", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "order.csv", [OK1], "Model,TimestampUTC,PromptTokens,CompletionTokens,TotalTokens");
    await writeLog(dir, "extra.csv", [`${OK1},0.01`], `${HEADER},CostUSD`);
    await writeLog(dir, "case.csv", [OK1], HEADER.toLowerCase());
    await writeLog(dir, "semi.csv", [OK1.replaceAll(",", ";")], HEADER.replaceAll(",", ";"));
    await writeFile(join(dir, "nohead.csv"), `${OK1}\n`);
    const r = await cli(["validate", "order.csv", "extra.csv", "case.csv", "semi.csv", "nohead.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^order\.csv:1: error: header .* has the right columns in the wrong order/m);
    assert.match(r.stdout, /^extra\.csv:1: error: header .* has 6 columns, expected exactly 5/m);
    assert.match(r.stdout, /^case\.csv:1: error: .*upper\/lower case/m);
    assert.match(r.stdout, /^semi\.csv:1: error: uses ";" between fields/m);
    assert.match(r.stdout, /^nohead\.csv:1: error: has no header/m);
    assert.equal(r.stdout.match(/: NOT VALID \(stopped at the first problem\)$/gm)?.length, 5);
    // Nothing after a wrong header is checked: one problem per file.
    for (const name of ["order", "extra", "case", "semi", "nohead"]) assert.equal(r.stdout.match(new RegExp(`^${name}\\.csv:\\d+: `, "gm"))?.length, 1, name);
  });

  test("files that are not logs: missing, a folder, JSON, binary, empty", async (t) => {
    const dir = await tmp(t);
    await writeFile(join(dir, "usage.json"), '{"usage":{"prompt_tokens":1}}');
    await writeFile(join(dir, "empty.csv"), "");
    await writeFile(join(dir, "bin.csv"), Buffer.from([1, 2, 0, 3]));
    const r = await cli(["validate", "missing.csv", ".", "usage.json", "empty.csv", "bin.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^missing\.csv: error: no such file$/m);
    assert.match(r.stdout, /^\.: error: is a directory/m);
    assert.match(r.stdout, /^usage\.json: error: looks like JSON, not CSV/m);
    assert.match(r.stdout, /^empty\.csv: error: is empty/m);
    assert.match(r.stdout, /^bin\.csv: error: is a binary file/m);
  });

  test("a quote that breaks the CSV stops the check at that line", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", [OK1, '2026-11-24T10:30:01.123456+00:00,"bad"model,1,2,3', OK2]);
    const r = await cli(["validate", "log.csv"], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^log\.csv:3: error: not valid CSV: a closing quote is followed by other characters .*; the rest of the file was not read$/m);
  });

  test("several files: a verdict each; exit 1 if any is invalid", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "a.csv", [OK1]);
    await writeLog(dir, "b.csv", ["oops,m,1,2,3"]);
    const both = await cli(["validate", "a.csv", "b.csv"], { cwd: dir });
    assert.equal(both.code, 1);
    assert.match(both.stdout, /^a\.csv: valid \(1 row\)$/m);
    assert.match(both.stdout, /^b\.csv: NOT VALID/m);
    assert.equal((await cli(["validate", "a.csv", "a.csv"], { cwd: dir })).code, 0);
  });

  test("--max-problems caps what is printed, not what is counted", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", Array.from({ length: 120 }, () => "bad,m,1,2,3"));
    const capped = await cli(["validate", "log.csv"], { cwd: dir });
    assert.equal(capped.stdout.match(/: error: /g)?.length, 50);
    assert.match(capped.stdout, /^log\.csv: 70 more problems not shown/m);
    assert.match(capped.stdout, /NOT VALID \(120 rows, 120 invalid; 120 errors\)/);
    const all = await cli(["validate", "--max-problems", "0", "log.csv"], { cwd: dir });
    assert.equal(all.stdout.match(/: error: /g)?.length, 120);
  });

  test("a log piped in: validate /dev/stdin (read as it comes, not at offsets)", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", [OK1, OK2]);
    // Through a shell's pipe, as a user would (a child's stdin from node is a socket, not a pipe).
    assertBuilt();
    const r = spawnSync("sh", ["-c", `cat log.csv | "${process.execPath}" "${cliPath}" validate /dev/stdin`], { cwd: dir, encoding: "utf8" });
    assert.equal(r.stdout, "/dev/stdin: valid (2 rows)\n", r.stderr);
    assert.equal(r.status, 0);
  });

  test("terminal escapes in a file are shown, not run", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", ["\u001b[2J,m,1,2,3"]);
    const r = await cli(["validate", "log.csv"], { cwd: dir });
    assert.doesNotMatch(r.stdout, /\u001b/);
    assert.match(r.stdout, /\\u001b\[2J/);
  });

  test("what validate accepts, Python's csv and datetime.fromisoformat read (the organisers' likely tools)", { skip: !hasPython && "python3 not available" }, async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "log.csv", [OK1, OK2, '2026-11-24T10:30:01.500+00:00,"a ""quoted"", model",1,2,3', "2026-11-24T10:30:01+00:00,m,0,0,0"]);
    assert.equal((await cli(["validate", "log.csv"], { cwd: dir })).code, 0);
    const py = spawnSync(
      "python3",
      ["-c", "import csv,sys,datetime\nr=list(csv.DictReader(open(sys.argv[1],newline='')))\nfor x in r: datetime.datetime.fromisoformat(x['TimestampUTC']); int(x['PromptTokens'])\nprint(len(r))", join(dir, "log.csv")],
      { encoding: "utf8" },
    );
    assert.equal(py.status, 0, py.stderr);
    assert.equal(py.stdout.trim(), "4");
  });
});
