/** The pure parts of `run`: argument splitting, NODE_OPTIONS quoting, the summary line. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { existsSync } from "node:fs";
import { formatSummary, preloadPath, quoteNodeOption, splitCommand, withPreload } from "../../src/cli/run.js";
import { runNode } from "../support/run-app.js";
import { tmp } from "./cli-helpers.js";

describe("splitCommand", () => {
  test("our options stop at -- or at the first non-option", () => {
    assert.deepEqual(splitCommand(["--", "node", "app.js", "--quiet"]), { own: [], command: ["node", "app.js", "--quiet"] });
    assert.deepEqual(splitCommand(["-q", "node", "--inspect", "app.js"]), { own: ["-q"], command: ["node", "--inspect", "app.js"] });
    assert.deepEqual(splitCommand(["--prices", "p.json", "--", "npm", "start"]), { own: ["--prices", "p.json"], command: ["npm", "start"] });
    assert.deepEqual(splitCommand(["--quiet"]), { own: ["--quiet"], command: [] });
    assert.deepEqual(splitCommand([]), { own: [], command: [] });
  });
});

describe("NODE_OPTIONS", () => {
  test("the preload is appended, keeping what was there", () => {
    assert.equal(withPreload(undefined, "file:///x/register.js"), "--import=file:///x/register.js");
    assert.equal(withPreload("  ", "file:///x/register.js"), "--import=file:///x/register.js");
    assert.equal(withPreload("--max-old-space-size=100", "file:///x/register.js"), "--max-old-space-size=100 --import=file:///x/register.js");
  });
  test("quoting for Node's NODE_OPTIONS parser", () => {
    assert.equal(quoteNodeOption("--import=/a/b.js"), "--import=/a/b.js");
    assert.equal(quoteNodeOption("--import=/a b/c.js"), '"--import=/a b/c.js"');
    assert.equal(quoteNodeOption('--import=/a"b\\c.js'), '"--import=/a\\"b\\\\c.js"');
  });
  test("node really loads a preload from a folder with spaces and quotes, by path and by URL", async (t) => {
    // (A backslash in a POSIX path cannot be imported at all: ESM rejects it in any spelling.)
    const dir = join(await tmp(t), 'with space "and" quotes');
    await mkdir(dir, { recursive: true });
    const preload = join(dir, "pre.mjs");
    await writeFile(preload, "globalThis.__preloaded = true;\n");
    for (const specifier of [preload, pathToFileURL(preload).href]) {
      const r = await runNode(["-e", "console.log(globalThis.__preloaded === true)"], { cwd: dir, env: { NODE_OPTIONS: withPreload("--no-warnings", specifier) } });
      assert.equal(r.stdout.trim(), "true", `${specifier}\n${r.stderr}`);
    }
  });
  test("the preload path is this package's register.js", () => {
    assert.match(preloadPath(), /register\.js$/);
    assert.ok(existsSync(preloadPath()), preloadPath());
  });
});

describe("formatSummary", () => {
  test("calls, tokens and cost", () => {
    assert.equal(formatSummary("/a/log.csv", 3, 1234, 0.0012, new Map()), "3 calls logged to /a/log.csv (1,234 tokens, est. $0.0012)");
    assert.equal(formatSummary("/a/log.csv", 1, 5, 0.00000075, new Map()), "1 call logged to /a/log.csv (5 tokens, est. <$0.0001)");
    assert.equal(formatSummary("/a/log.csv", 0, 0, 0, new Map()), "no calls logged to /a/log.csv");
  });
  test("unknown models are named, never costed at $0", () => {
    assert.equal(formatSummary("/l", 3, 30, 0.0012, new Map([["voxtral-x", 1]])), "3 calls logged to /l (30 tokens, est. $0.0012 + n/a for 1 call to voxtral-x)");
    assert.equal(formatSummary("/l", 2, 30, 0, new Map([["voxtral-x", 2]])), "2 calls logged to /l (30 tokens, est. cost n/a (no price for voxtral-x))");
  });
});
