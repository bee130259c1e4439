import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SAID_ENV, sayConfigWarnings, stderrReporter } from "../../src/report.js";

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

describe("sayConfigWarnings", () => {
  test("says what was not said higher up, and records it for the threads and processes started later", () => {
    const said: string[] = [];
    const parent: Record<string, string | undefined> = {};
    sayConfigWarnings(["A is bad", "B is bad"], (m) => said.push(m), parent);
    assert.deepEqual(said, ["A is bad", "B is bad"]);
    assert.equal(parent[SAID_ENV], "A is bad\nB is bad");
    // A child with the same environment says nothing; one with another bad value says that one.
    const child = { ...parent };
    sayConfigWarnings(["A is bad", "B is bad"], (m) => said.push(m), child);
    sayConfigWarnings(["A is bad", "C is bad"], (m) => said.push(m), child);
    assert.deepEqual(said, ["A is bad", "B is bad", "C is bad"]);
    assert.equal(child[SAID_ENV], "A is bad\nB is bad\nC is bad");
  });

  test("no warnings: the environment is not touched", () => {
    const env: Record<string, string | undefined> = {};
    sayConfigWarnings([], () => assert.fail("nothing to say"), env);
    assert.deepEqual(env, {});
  });
});
