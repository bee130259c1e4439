/**
 * `mistral-usage report --html`: the page opened in a real browser (Debian's headless chromium),
 * checked for console errors and network requests, and its figures against `report --json`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { findChromium, openPage } from "../support/chromium.js";
import { BASE_MICROS, cli, tmp, ts, writeLog } from "./cli-helpers.js";
import type { Row } from "./cli-helpers.js";

const MODELS = ["mistral-small-2603", "codestral-2508", "mistral-large-2512", "mistral-embed", "voxtral-mini-2507", 'evil"<img src=x onerror=alert(1)>'];

/** The log's lines, the model quoted as RFC 4180 asks when it holds a quote. */
function rows(n: number): string[] {
  return rowValues(n).map((r) => `${r.ts},${r.model.includes('"') ? `"${r.model.replaceAll('"', '""')}"` : r.model},${r.prompt},${r.completion},${r.total}`);
}

function rowValues(n: number): Row[] {
  return Array.from({ length: n }, (_, i) => {
    const model = MODELS[(i * 7) % MODELS.length] as string;
    const prompt = 100 + ((i * 37) % 4000);
    const completion = model === "mistral-embed" ? 0 : (i * 11) % 900;
    // About five days, several calls an hour.
    return { ts: ts(BASE_MICROS + i * 1_700_000_000), model, prompt, completion, total: prompt + completion };
  });
}

interface JsonGroup {
  calls: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  costUsd: number | null;
  [key: string]: unknown;
}

const chromium = findChromium();

describe("report --html", () => {
  test("the page is self-contained: no script, no external resource, model names escaped", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "mistral_usage_log.csv", rows(300));
    const r = await cli(["report", "--html", "usage.html"], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, "mistral-usage: report written to usage.html: open it in a browser\n");
    const html = await readFile(join(dir, "usage.html"), "utf8");
    assert.match(html, /^<!doctype html>/);
    assert.doesNotMatch(html, /<script|<link|<img|@import|url\(|https?:/i);
    assert.match(html, /evil&quot;&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.ok(html.length < 60_000, `${html.length} bytes`);
    const stdout = await cli(["report", "--html", "-"], { cwd: dir });
    assert.equal(stdout.stdout.replace(/on \d{4}-\d\d-\d\d \d\d:\d\d UTC/, ""), html.replace(/on \d{4}-\d\d-\d\d \d\d:\d\d UTC/, ""));
  });

  test("--html with --json, or without a FILE, is a usage error", async (t) => {
    const dir = await tmp(t);
    await writeLog(dir, "mistral_usage_log.csv", rows(3));
    const both = await cli(["report", "--json", "--html", "x.html"], { cwd: dir });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--html and --json: choose one/);
    const none = await cli(["report", "--html"], { cwd: dir });
    assert.equal(none.code, 2);
  });

  for (const by of ["model", "day"] as const) {
    test(`in a real browser (--by ${by}): no console error, no request, the figures of report --json`, { skip: "missing" in chromium && chromium.missing, timeout: 120_000 }, async (t) => {
      if (!("path" in chromium)) return;
      const dir = await tmp(t);
      await writeLog(dir, "mistral_usage_log.csv", rows(300));
      await writeFile(join(dir, "prices.json"), JSON.stringify({ asOf: "2026-11-20", models: { "codestral-2508": { input: 0.2, output: 0.6 } } }));
      const args = ["--by", by, "--prices", "prices.json"];
      const page = await cli(["report", ...args, "--html", "usage.html"], { cwd: dir });
      assert.equal(page.code, 0, page.stderr);
      const json = JSON.parse((await cli(["report", ...args, "--json"], { cwd: dir })).stdout) as { groups: JsonGroup[]; total: JsonGroup; prices: { asOf: string } };

      const url = pathToFileURL(join(dir, "usage.html")).href;
      const browser = await openPage(chromium.path, url);
      try {
        const shown = await browser.evaluate<{ head: string[]; body: string[][]; total: string[]; svgs: number; bars: number; notes: string; images: number; legend: string[] }>(`(() => {
          const cells = (tr) => [...tr.children].map((c) => c.textContent.trim());
          return {
            head: cells(document.querySelector("#usage thead tr")),
            body: [...document.querySelectorAll("#usage tbody tr")].map(cells),
            total: cells(document.querySelector("#total")),
            svgs: document.querySelectorAll("svg").length,
            bars: document.querySelectorAll("svg path").length,
            notes: document.querySelector(".notes").textContent,
            images: document.images.length,
            legend: [...document.querySelectorAll(".legend li")].map((li) => li.textContent),
          };
        })()`);
        assert.deepEqual(browser.problems, []);
        assert.deepEqual(browser.requests, [url], "the page loads nothing but itself");
        assert.equal(shown.images, 0, "a model name never becomes markup");
        assert.deepEqual(shown.head, [by === "model" ? "Model" : "Day (UTC)", "Calls", "Prompt", "Completion", "Total", "Est. cost"]);
        const num = (text: string | undefined): number => Number((text ?? "").replace(/[$,*]/g, ""));
        const same = (cells: readonly string[], g: JsonGroup, label: string): void => {
          assert.deepEqual(cells.slice(1, 5).map(num), [g.calls, g.promptTokens, g.completionTokens, g.totalTokens], label);
          if (g.costUsd === null) assert.equal(cells[5], "n/a", label);
          else assert.ok(Math.abs(num(cells[5]) - g.costUsd) <= 0.00005 + 1e-12, `${label}: ${cells[5]} vs ${g.costUsd}`);
        };
        same(shown.total, json.total, "total");
        assert.equal(shown.body.length, json.groups.length);
        for (const [i, g] of json.groups.entries()) {
          assert.equal(shown.body[i]?.[0], String(g[by]));
          same(shown.body[i] ?? [], g, String(g[by]));
        }
        assert.equal(shown.svgs, 2, "tokens and cost per day");
        assert.ok(shown.bars >= 5, "a stack of bars per model");
        assert.deepEqual([...shown.legend].sort(), [...MODELS].sort());
        assert.match(shown.notes, /as of 2026-10-06/);
        assert.match(shown.notes, /prices\.json \(as of 2026-11-20\)/);
        const png = await browser.screenshot();
        assert.equal(png.subarray(1, 4).toString(), "PNG");
        const keep = process.env["MISTRAL_USAGE_SCREENSHOTS"];
        if (keep !== undefined && keep !== "") await writeFile(join(keep, `report-html-${by}.png`), png);
      } finally {
        await browser.close();
      }
    });
  }
});
