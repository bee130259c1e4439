import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UsageAggregator, groupKey, parseTimeBound, timeFilter } from "../../src/cli/aggregate.js";
import type { LogRow } from "../../src/log/check.js";
import { parseTimestamp } from "../../src/log/check.js";
import { PriceBook } from "../../src/cli/prices.js";
import { BUILTIN_PRICES } from "../../src/cli/prices-data.js";

const prices = new PriceBook(BUILTIN_PRICES);

function row(timestamp: string, model: string, p: number, c: number, t = p + c): LogRow {
  const micros = parseTimestamp(timestamp);
  assert.equal(typeof micros, "number");
  return { timestamp, micros: micros as number, model, promptTokens: p, completionTokens: c, totalTokens: t };
}

const ROWS = [
  row("2026-11-24T10:30:01.123456+00:00", "mistral-small-2603", 1520, 842),
  row("2026-11-24T10:31:05.654321+00:00", "mistral-small-latest", 3504, 1502),
  row("2026-11-24T11:02:44.000120+00:00", "mistral-embed", 6210, 0),
  row("2026-11-24T13:15:09.500000+00:00", "mistral-moderation-2411", 380, 0, 1140),
  row("2026-11-25T09:05:00.000001+00:00", "mistral-small-2603", 800, 200),
  row("2026-11-23T23:59:59.999999+00:00", "codestral-2508", 100, 50),
];

describe("UsageAggregator", () => {
  test("by model: sums, costs, unpriced models as null (never 0), sorted by tokens", () => {
    const agg = new UsageAggregator("model");
    for (const r of ROWS) agg.add(r);
    const s = agg.summarize(prices);
    assert.deepEqual(
      s.groups.map((g) => [g.key, g.calls, g.promptTokens, g.completionTokens, g.totalTokens]),
      [
        ["mistral-embed", 1, 6210, 0, 6210],
        ["mistral-small-latest", 1, 3504, 1502, 5006],
        ["mistral-small-2603", 2, 2320, 1042, 3362],
        ["mistral-moderation-2411", 1, 380, 0, 1140],
        ["codestral-2508", 1, 100, 50, 150],
      ],
    );
    const cost = (model: string): number | null | undefined => s.groups.find((g) => g.key === model)?.costUsd;
    assert.equal(cost("mistral-moderation-2411"), null);
    assert.ok(Math.abs((cost("mistral-small-2603") ?? NaN) - (2320 * 0.15 + 1042 * 0.6) / 1e6) < 1e-12);
    assert.ok(Math.abs((cost("mistral-embed") ?? NaN) - (6210 * 0.1) / 1e6) < 1e-12);
    const expectedTotal = (2320 * 0.15 + 1042 * 0.6 + 3504 * 0.15 + 1502 * 0.6 + 6210 * 0.1 + 100 * 0.3 + 50 * 0.9) / 1e6;
    assert.ok(Math.abs((s.total.costUsd ?? NaN) - expectedTotal) < 1e-12);
    assert.equal(s.total.calls, 6);
    assert.equal(s.total.totalTokens, 6210 + 5006 + 3362 + 1140 + 150);
    assert.equal(s.total.unpricedCalls, 1);
    assert.deepEqual(s.unpriced, [{ model: "mistral-moderation-2411", calls: 1 }]);
    assert.equal(s.first?.timestamp, "2026-11-23T23:59:59.999999+00:00");
    assert.equal(s.last?.timestamp, "2026-11-25T09:05:00.000001+00:00");
    assert.equal(s.notes.length, 1);
    assert.match(s.notes[0] ?? "", /Small 4/);
  });

  test("by day and hour: UTC groups in time order; a group with an unpriced call keeps a partial cost", () => {
    const day = new UsageAggregator("day");
    const hour = new UsageAggregator("hour");
    for (const r of ROWS) {
      day.add(r);
      hour.add(r);
    }
    const d = day.summarize(prices);
    assert.deepEqual(
      d.groups.map((g) => [g.key, g.calls, g.unpricedCalls]),
      [
        ["2026-11-23", 1, 0],
        ["2026-11-24", 4, 1],
        ["2026-11-25", 1, 0],
      ],
    );
    assert.ok((d.groups[1]?.costUsd ?? 0) > 0);
    const h = hour.summarize(prices);
    assert.deepEqual(
      h.groups.map((g) => g.key),
      ["2026-11-23T23", "2026-11-24T10", "2026-11-24T11", "2026-11-24T13", "2026-11-25T09"],
    );
    assert.equal(h.groups.find((g) => g.key === "2026-11-24T13")?.costUsd, null);
  });

  test("family-priced models are reported", () => {
    const agg = new UsageAggregator("model");
    agg.add(row("2026-11-24T10:30:01.123456+00:00", "mistral-small-2609", 10, 10));
    const s = agg.summarize(prices);
    assert.deepEqual(s.pricedAs, [{ model: "mistral-small-2609", as: "mistral-small-latest", key: "mistral-small-2603" }]);
  });

  test("no rows: no range, zero counts, null cost", () => {
    const s = new UsageAggregator("model").summarize(prices);
    assert.equal(s.first, undefined);
    assert.equal(s.total.calls, 0);
    assert.equal(s.total.costUsd, null);
  });

  test("groupKey uses the UTC prefix of the timestamp (Z and +00:00 alike)", () => {
    const r = row("2026-11-24T10:30:01Z", "m", 1, 1);
    assert.equal(groupKey(r, "day"), "2026-11-24");
    assert.equal(groupKey(r, "hour"), "2026-11-24T10");
    assert.equal(groupKey(r, "model"), "m");
  });
});

describe("--since / --until", () => {
  test("dates and date-times, UTC unless an offset is given", () => {
    const at = (text: string): number => {
      const b = parseTimeBound(text);
      assert.equal(typeof b, "object", text);
      return (b as { micros: number }).micros;
    };
    assert.equal(at("2026-11-24"), Date.UTC(2026, 10, 24) * 1000);
    assert.equal(at("2026-11-24T10:30"), Date.UTC(2026, 10, 24, 10, 30) * 1000);
    assert.equal(at("2026-11-24 10:30:05"), Date.UTC(2026, 10, 24, 10, 30, 5) * 1000);
    assert.equal(at("2026-11-24T10:30:05.25Z"), Date.UTC(2026, 10, 24, 10, 30, 5, 250) * 1000);
    assert.equal(at("2026-11-24T12:30:00+02:00"), Date.UTC(2026, 10, 24, 10, 30) * 1000);
    assert.equal(at("2026-11-24T05:30:00-05:00"), Date.UTC(2026, 10, 24, 10, 30) * 1000);
    for (const bad of ["yesterday", "2026-13-01", "2026-02-30", "24/11/2026", "2026-11-24T25:00"]) assert.equal(typeof parseTimeBound(bad), "string", bad);
  });

  test("since is inclusive, until exclusive; a bare --until date includes its whole day", () => {
    const since = parseTimeBound("2026-11-24T10:00") as { micros: number; dateOnly: boolean };
    const untilDay = parseTimeBound("2026-11-24") as { micros: number; dateOnly: boolean };
    const untilTime = parseTimeBound("2026-11-24T11:00") as { micros: number; dateOnly: boolean };
    const day = timeFilter(since, untilDay);
    const t = (s: string): number => parseTimestamp(s) as number;
    assert.equal(day(t("2026-11-24T10:00:00.000000+00:00")), true);
    assert.equal(day(t("2026-11-24T09:59:59.999999+00:00")), false);
    assert.equal(day(t("2026-11-24T23:59:59.999999+00:00")), true);
    assert.equal(day(t("2026-11-25T00:00:00.000000+00:00")), false);
    const hour = timeFilter(since, untilTime);
    assert.equal(hour(t("2026-11-24T10:59:59.999999+00:00")), true);
    assert.equal(hour(t("2026-11-24T11:00:00.000000+00:00")), false);
    assert.equal(timeFilter(undefined, undefined)(0), true);
  });
});
