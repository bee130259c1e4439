/** The progress line: on a terminal only, only for work that takes over a second; and the report's width. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { progressFor } from "../../src/cli/progress.js";
import { textWidth } from "../../src/cli/report.js";
import type { Context } from "../../src/cli/common.js";

function context(tty: boolean, env: Record<string, string> = {}, columns?: number): { ctx: Context; err: string[] } {
  const err: string[] = [];
  const stream = (isTTY: boolean) => ({ isTTY, ...(columns === undefined ? {} : { columns }), write: (s: string) => (err.push(s), true) }) as unknown as NodeJS.WritableStream & { isTTY: boolean };
  return { ctx: { stdout: stream(tty), stderr: stream(tty), env, cwd: "/" }, err };
}

describe("progress", () => {
  test("nothing when stderr is not a terminal", () => {
    const { ctx, err } = context(false);
    let now = 0;
    const p = progressFor(ctx, "report", () => now);
    for (now = 0; now < 5000; now += 50) p.update("reading big.csv", now, 10_000);
    p.clear();
    assert.deepEqual(err, []);
  });

  test("on a terminal: nothing in the first half second, nor for work about to end; then a line, cleared at the end", () => {
    const { ctx, err } = context(true);
    let now = 0;
    const quick = progressFor(ctx, "report", () => now);
    now = 600;
    quick.update("reading a.csv", 90, 100); // 90% done after 0.6 s: done within a second
    quick.clear();
    assert.deepEqual(err, []);

    now = 0;
    const slow = progressFor(ctx, "validate", () => now);
    now = 300;
    slow.update("checking big.csv", 10, 100);
    assert.deepEqual(err, []);
    now = 600;
    slow.update("checking big.csv", 20, 100);
    now = 650;
    slow.update("checking big.csv", 21, 100); // within 100 ms of the last line: not redrawn
    now = 800;
    slow.update("checking big.csv", 30, 100);
    slow.clear();
    assert.deepEqual(err, ["\r\u001b[2Kmistral-usage validate: checking big.csv 20%", "\r\u001b[2Kmistral-usage validate: checking big.csv 30%", "\r\u001b[2K"]);
  });

  test("TERM=dumb: no progress", () => {
    const { ctx, err } = context(true, { TERM: "dumb" });
    let now = 0;
    const p = progressFor(ctx, "merge", () => now);
    now = 2000;
    p.update("writing", 1, 100);
    assert.deepEqual(err, []);
  });
});

describe("report width", () => {
  test("80 when not a terminal; on a terminal $COLUMNS, else its own width, at least 60", () => {
    assert.equal(textWidth(context(false, { COLUMNS: "200" }, 150).ctx), 80);
    assert.equal(textWidth(context(true, { COLUMNS: "200" }, 150).ctx), 200);
    assert.equal(textWidth(context(true, {}, 150).ctx), 150);
    assert.equal(textWidth(context(true, { COLUMNS: "x" }, 100).ctx), 100);
    assert.equal(textWidth(context(true, {}, 40).ctx), 60);
    assert.equal(textWidth(context(true, {}).ctx), 80);
  });
});
