import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ANSI_STYLE, NO_STYLE, formatDuration, formatInt, formatUsd, printable, renderTable, shortTime, useColor, wrap } from "../../src/cli/format.js";
import { UsageAggregator } from "../../src/cli/aggregate.js";
import { parseTimestamp } from "../../src/log/check.js";
import type { LogRow } from "../../src/log/check.js";
import { PriceBook, validatePriceTable } from "../../src/cli/prices.js";
import { BUILTIN_PRICES } from "../../src/cli/prices-data.js";
import { renderReport, reportJson } from "../../src/cli/report.js";

describe("numbers", () => {
  test("formatInt: thousands separators, whatever the locale", () => {
    assert.equal(formatInt(0), "0");
    assert.equal(formatInt(999), "999");
    assert.equal(formatInt(1000), "1,000");
    assert.equal(formatInt(1234567), "1,234,567");
    assert.equal(formatInt(-1234), "-1,234");
    assert.equal(formatInt(9007199254740991), "9,007,199,254,740,991");
  });
  test("formatUsd: n/a for unknown, never $0.0000 for a positive amount", () => {
    assert.equal(formatUsd(null), "n/a");
    assert.equal(formatUsd(0), "$0.0000");
    assert.equal(formatUsd(0.00000062), "<$0.0001");
    assert.equal(formatUsd(0.00012), "$0.0001");
    assert.equal(formatUsd(0.0666), "$0.0666");
    assert.equal(formatUsd(1234.5), "$1,234.5000");
  });
  test("durations and times", () => {
    assert.equal(formatDuration(0), "0s");
    assert.equal(formatDuration(45_000_000), "45s");
    assert.equal(formatDuration(423_000_000), "7m 3s");
    assert.equal(formatDuration((7 * 3600 + 32 * 60) * 1e6), "7h 32m");
    assert.equal(formatDuration((2 * 86400 + 3 * 3600) * 1e6), "2d 3h");
    assert.equal(shortTime("2026-11-24T10:30:01.123456+00:00"), "2026-11-24 10:30:01");
  });
});

describe("text", () => {
  test("printable neutralises terminal escapes and line breaks from a file", () => {
    assert.equal(printable("a\u001b[2Jb\nc\u0007"), "a\\x1b[2Jb\\x0ac\\x07");
    assert.equal(printable("日本🙂"), "日本🙂");
  });
  test("wrap", () => {
    assert.deepEqual(wrap("aaa bbb ccc ddd", 8, "  "), ["aaa bbb", "  ccc", "  ddd"]);
    assert.deepEqual(wrap("", 10), []);
  });
  test("colour only on a TTY without NO_COLOR", () => {
    assert.equal(useColor(true, {}), true);
    assert.equal(useColor(false, {}), false);
    assert.equal(useColor(undefined, {}), false);
    assert.equal(useColor(true, { NO_COLOR: "1" }), false);
    assert.equal(useColor(true, { NO_COLOR: "" }), true);
    assert.equal(useColor(true, { TERM: "dumb" }), false);
    assert.equal(ANSI_STYLE.red("x"), "\u001b[31mx\u001b[39m");
    assert.equal(NO_STYLE.red("x"), "x");
  });
});

describe("renderTable", () => {
  test("right-aligned numbers, a rule under the header and above the footer", () => {
    const lines = renderTable(
      [
        { header: "Model", align: "left" },
        { header: "Calls", align: "right" },
      ],
      [
        ["a", "1"],
        ["bbbbbb", "1,000"],
        ["Total", "1,001"],
      ],
      { footerFrom: 2 },
    );
    assert.deepEqual(lines, ["Model   Calls", "-------------", "a           1", "bbbbbb  1,000", "-------------", "Total   1,001"]);
  });
  test("the shrinkable column is cut with … to fit the width", () => {
    const lines = renderTable(
      [
        { header: "Model", align: "left", shrink: true, minWidth: 8 },
        { header: "N", align: "right" },
      ],
      [["a-very-long-model-name-indeed", "1"]],
      { maxWidth: 14 },
    );
    assert.ok(lines.every((l) => l.length <= 14), lines.join("\n"));
    assert.match(lines[2] ?? "", /^a-very-lon…\s+1$/);
  });
});

function row(timestamp: string, model: string, p: number, c: number, t = p + c): LogRow {
  return { timestamp, micros: parseTimestamp(timestamp) as number, model, promptTokens: p, completionTokens: c, totalTokens: t };
}

describe("renderReport", () => {
  const prices = new PriceBook(BUILTIN_PRICES);
  const agg = new UsageAggregator("model");
  agg.add(row("2026-11-24T10:30:01.123456+00:00", "mistral-small-2603", 1_234_567, 89_012));
  agg.add(row("2026-11-24T18:02:11.000000+00:00", "mistral-moderation-2411", 380, 0, 1140));
  agg.add(row("2026-11-24T12:00:00.000000+00:00", "labs-devstral-small-2512", 5, 5));
  const summary = agg.summarize(prices);
  const meta = { files: ["mistral_usage_log.csv"], prices, invalidRows: 0 };
  const text = renderReport(summary, meta, { width: 80, style: NO_STYLE });
  const lines = text.trimEnd().split("\n");

  test("fits 80 columns", () => {
    for (const l of lines) assert.ok(l.length <= 80, `${l.length}: ${l}`);
  });
  test("a row per model, the total, n/a with a footnote, the time range and the price date", () => {
    assert.match(text, /3 calls from 2026-11-24 10:30:01 to 2026-11-24 18:02:11 UTC \(7h 32m\)/);
    const small = lines.find((l) => l.startsWith("mistral-small-2603"));
    assert.match(small ?? "", /^mistral-small-2603\s+1\s+1,234,567\s+89,012\s+1,323,579\s+\$0\.2386$/);
    assert.match(lines.find((l) => l.startsWith("mistral-moderation-2411")) ?? "", /\s+n\/a$/);
    assert.match(lines.find((l) => l.startsWith("Total")) ?? "", /^Total\s+3\s+1,234,952\s+89,017\s+1,324,729\s+\$0\.2386\*$/);
    const unwrapped = text.replace(/\n  /g, " ");
    assert.match(unwrapped, /n\/a: no price known for mistral-moderation-2411 \(1 call\)\. Costs marked \* leave these calls out\./);
    assert.match(text, /as of 2026-10-06/);
    assert.doesNotMatch(text, /\$0\.0000/);
  });
  test("a very long model name is never cut (a billing report must not merge two names); the notes still wrap", () => {
    // This test said the opposite before issue 14: names were cut with … to keep 80 columns.
    const long = new UsageAggregator("model");
    const name = `custom-${"x".repeat(70)}`;
    long.add(row("2026-11-24T10:30:01.123456+00:00", name, 123_456_789, 123_456_789));
    const out = renderReport(long.summarize(prices), meta, { width: 80, style: NO_STYLE });
    assert.doesNotMatch(out, /…/);
    assert.ok(out.split("\n").some((l) => l.startsWith(`${name}  `)));
    const prose = out.split("\n").filter((l) => !l.includes(name) && !/^-+$/.test(l) && !/^(Model|Total) /.test(l));
    for (const l of prose) assert.ok(l.length <= 80, `${l.length}: ${l}`);
  });
  test("no calls", () => {
    const empty = renderReport(new UsageAggregator("day").summarize(prices), { ...meta, since: "2027-01-01" }, { width: 80, style: NO_STYLE });
    assert.match(empty, /No calls \(--since 2027-01-01\)\./);
  });
  test("JSON: raw numbers, null for unknown costs, the price date and the override", () => {
    const override = validatePriceTable({ asOf: "2026-11-30", models: { "mistral-moderation-2411": { input: 0.1, output: 0.1 } } }, "p.json");
    const withFile = new PriceBook(BUILTIN_PRICES, override);
    const json = reportJson(summary, meta) as Record<string, unknown>;
    assert.deepEqual((json["total"] as Record<string, unknown>)["calls"], 3);
    assert.equal(((json["groups"] as Record<string, unknown>[]).find((g) => g["model"] === "mistral-moderation-2411") ?? {})["costUsd"], null);
    assert.deepEqual(json["unpricedModels"], [{ model: "mistral-moderation-2411", calls: 1 }]);
    assert.deepEqual(json["prices"], { asOf: "2026-10-06", source: BUILTIN_PRICES.source, file: null, fileAsOf: null });
    const agg2 = new UsageAggregator("model");
    agg2.add(row("2026-11-24T18:02:11.000000+00:00", "mistral-moderation-2411", 380, 0, 1140));
    const json2 = reportJson(agg2.summarize(withFile), { ...meta, prices: withFile, pricesFile: "p.json" }) as Record<string, Record<string, unknown>>;
    assert.equal(json2["total"]?.["costUsd"], 0.000038);
    assert.equal(json2["prices"]?.["fileAsOf"], "2026-11-30");
  });
});
