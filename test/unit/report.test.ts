import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { stderrReporter } from "../../src/report.js";

function capture() {
  const lines: string[] = [];
  return { lines, reporter: stderrReporter((line) => lines.push(line)) };
}

describe("stderrReporter", () => {
  test("prefixes each line with the package name and ends it with a newline", () => {
    const { lines, reporter } = capture();
    reporter.warn("POST /v1/chat/completions: 200 response has no usage; no row written");
    reporter.info("logged mistral-small-latest 19+2=21 tokens to /srv/app/mistral_usage_log.csv");
    assert.deepEqual(lines, [
      "mistral-usage-log: POST /v1/chat/completions: 200 response has no usage; no row written\n",
      "mistral-usage-log: logged mistral-small-latest 19+2=21 tokens to /srv/app/mistral_usage_log.csv\n",
    ]);
  });

  test("an identical warning is written once", () => {
    const { lines, reporter } = capture();
    for (let i = 0; i < 5; i++) reporter.warn("cannot write /srv/app/mistral_usage_log.csv: EACCES");
    assert.deepEqual(lines, ["mistral-usage-log: cannot write /srv/app/mistral_usage_log.csv: EACCES\n"]);
  });

  test("different warnings are each written, in order, repeats skipped", () => {
    const { lines, reporter } = capture();
    for (const message of ["a", "b", "a", "c", "b", "A", "a "]) reporter.warn(message);
    assert.deepEqual(lines, ["a", "b", "c", "A", "a "].map((m) => `mistral-usage-log: ${m}\n`));
  });

  test("info is never deduplicated, and does not count as a warning seen", () => {
    const { lines, reporter } = capture();
    reporter.info("same");
    reporter.info("same");
    reporter.warn("same");
    reporter.warn("same");
    reporter.info("same");
    assert.equal(lines.length, 4);
    assert.ok(lines.every((line) => line === "mistral-usage-log: same\n"));
  });

  test("each reporter has its own memory of warnings", () => {
    const first = capture();
    const second = capture();
    first.reporter.warn("x");
    second.reporter.warn("x");
    assert.equal(first.lines.length, 1);
    assert.equal(second.lines.length, 1);
  });

  test("multi-line and non-ASCII messages are written as given", () => {
    const { lines, reporter } = capture();
    reporter.warn("model « modèle-日本-😀 »\nsecond line");
    assert.deepEqual(lines, ["mistral-usage-log: model « modèle-日本-😀 »\nsecond line\n"]);
  });

  test("stops after 100 distinct warnings, so a misbehaving app cannot flood stderr", () => {
    const { lines, reporter } = capture();
    for (let i = 0; i < 250; i++) reporter.warn(`problem ${i}`);
    assert.equal(lines.length, 100);
    assert.equal(lines[99], "mistral-usage-log: problem 99\n");
    // info still goes through.
    reporter.info("still here");
    assert.equal(lines.at(-1), "mistral-usage-log: still here\n");
  });
});
