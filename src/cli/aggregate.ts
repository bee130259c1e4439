/**
 * Sums rows into groups (by model, UTC day or UTC hour) and prices them. Pure; memory grows with
 * the number of groups and models, never with the number of rows.
 */
import { isoMicros, parseIsoDateTime } from "../log/check.js";
import type { LogRow } from "../log/check.js";
import { costUsd } from "./prices.js";
import type { PriceBook, Resolution } from "./prices.js";

export type GroupBy = "model" | "day" | "hour";
export const GROUP_BY: readonly GroupBy[] = ["model", "day", "hour"];

export interface Counts {
  calls: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface UsageGroup extends Counts {
  /** The model name, `YYYY-MM-DD` (day) or `YYYY-MM-DDTHH` (hour), UTC. */
  readonly key: string;
  /** Estimated USD for the calls that have a price; null when none of them has one. */
  costUsd: number | null;
  /** Calls to models without a price, not included in `costUsd`. */
  unpricedCalls: number;
}

export interface UnpricedModel {
  readonly model: string;
  readonly calls: number;
}

export interface PricedAs {
  readonly model: string;
  /** The price-table name used for it. */
  readonly as: string;
  readonly key: string;
}

export interface UsageSummary {
  readonly by: GroupBy;
  readonly groups: UsageGroup[];
  readonly total: UsageGroup;
  /** First and last rows by time (as written in the log), when there are rows. */
  readonly first?: { readonly timestamp: string; readonly micros: number };
  readonly last?: { readonly timestamp: string; readonly micros: number };
  /** Models without any price, with their call counts (these show n/a). */
  readonly unpriced: UnpricedModel[];
  /** Models priced through a `-latest` or family fallback rather than by name. */
  readonly pricedAs: PricedAs[];
  /** Notes of the price entries that were used (conflicts between sources, preview prices). */
  readonly notes: string[];
}

/** Accumulates rows; call `summarize` when done. */
export class UsageAggregator {
  readonly #groups = new Map<string, Map<string, Counts>>();
  // The rows themselves: a row read from bytes makes its timestamp text only when asked.
  #first: LogRow | undefined;
  #last: LogRow | undefined;
  readonly #lastKey: KeyCache = { by: undefined, from: 0, key: "" };

  constructor(readonly by: GroupBy) {}

  add(row: LogRow): void {
    const key = groupKey(row, this.by, this.#lastKey);
    let models = this.#groups.get(key);
    if (models === undefined) this.#groups.set(key, (models = new Map()));
    let counts = models.get(row.model);
    if (counts === undefined) models.set(row.model, (counts = { calls: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0 }));
    counts.calls++;
    counts.promptTokens += row.promptTokens;
    counts.completionTokens += row.completionTokens;
    counts.totalTokens += row.totalTokens;
    if (this.#first === undefined || row.micros < this.#first.micros) this.#first = row;
    if (this.#last === undefined || row.micros > this.#last.micros) this.#last = row;
  }

  /** Counts per group and model, for the charts of the HTML report. */
  byModel(): ReadonlyMap<string, ReadonlyMap<string, Readonly<Counts>>> {
    return this.#groups;
  }

  summarize(prices: PriceBook): UsageSummary {
    const total: UsageGroup = emptyGroup("Total");
    const groups: UsageGroup[] = [];
    const unpriced = new Map<string, number>();
    const pricedAs = new Map<string, PricedAs>();
    const notes = new Map<string, string>();
    for (const [key, models] of this.#groups) {
      const group = emptyGroup(key);
      for (const [model, counts] of models) {
        addCounts(group, counts);
        const price: Resolution | undefined = prices.resolve(model);
        if (price === undefined) {
          group.unpricedCalls += counts.calls;
          unpriced.set(model, (unpriced.get(model) ?? 0) + counts.calls);
          continue;
        }
        group.costUsd = (group.costUsd ?? 0) + costUsd(price.entry, counts.promptTokens, counts.completionTokens);
        if (price.via !== "exact") pricedAs.set(model, { model, as: price.matched, key: price.key });
        if (price.entry.note !== undefined) notes.set(price.key, `${price.entry.note}.`);
      }
      addCounts(total, group);
      total.unpricedCalls += group.unpricedCalls;
      if (group.costUsd !== null) total.costUsd = (total.costUsd ?? 0) + group.costUsd;
      groups.push(group);
    }
    if (this.by === "model") {
      groups.sort((a, b) => b.totalTokens - a.totalTokens || b.calls - a.calls || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    } else {
      groups.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    }
    const summary: UsageSummary = {
      by: this.by,
      groups,
      total,
      unpriced: [...unpriced].map(([model, calls]) => ({ model, calls })).sort((a, b) => b.calls - a.calls || (a.model < b.model ? -1 : 1)),
      pricedAs: [...pricedAs.values()].sort((a, b) => (a.model < b.model ? -1 : 1)),
      notes: [...notes.values()],
      ...(this.#first === undefined ? {} : { first: { timestamp: this.#first.timestamp, micros: this.#first.micros } }),
      ...(this.#last === undefined ? {} : { last: { timestamp: this.#last.timestamp, micros: this.#last.micros } }),
    };
    return summary;
  }
}

/**
 * The group a row belongs to. Timestamps are UTC (Z or +00:00), so the UTC date and hour of
 * `micros` are the text's own prefix; taken from the number, a row read from bytes needs no text.
 */
export function groupKey(row: LogRow, by: GroupBy, last: KeyCache = { by: undefined, from: 0, key: "" }): string {
  if (by === "model") return row.model;
  const span = by === "day" ? 86_400_000_000 : 3_600_000_000;
  if (by !== last.by || row.micros < last.from || row.micros >= last.from + span) {
    last.by = by;
    last.from = Math.floor(row.micros / span) * span;
    last.key = new Date(last.from / 1000).toISOString().slice(0, by === "day" ? 10 : 13);
  }
  return last.key;
}

/** The key of the last day or hour seen: rows come in time order, mostly. */
export interface KeyCache {
  by: GroupBy | undefined;
  from: number;
  key: string;
}

function emptyGroup(key: string): UsageGroup {
  return { key, calls: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: null, unpricedCalls: 0 };
}

function addCounts(into: Counts, from: Counts): void {
  into.calls += from.calls;
  into.promptTokens += from.promptTokens;
  into.completionTokens += from.completionTokens;
  into.totalTokens += from.totalTokens;
}

/** Parses a `--since` / `--until` value to microseconds since the epoch, or says what is wrong. */
export interface TimeBound {
  readonly micros: number;
  /** True for a bare date (`--until 2026-11-24` then includes that whole day). */
  readonly dateOnly: boolean;
}

/**
 * An ISO date (`2026-11-24`) or date-time (`2026-11-24T10:30`, seconds and fraction optional).
 * Without an offset it is UTC; with one (`+02:00`, `Z`) it is converted.
 */
export function parseTimeBound(text: string): TimeBound | string {
  const t = parseIsoDateTime(text.trim());
  if (t === undefined) return `${JSON.stringify(text)} is not an ISO date or date-time (e.g. 2026-11-24 or 2026-11-24T10:30:00Z)`;
  let offsetMinutes = 0;
  if (t.offset !== undefined && t.offset !== "Z") {
    const om = /^([+-])(\d\d):?(\d\d)$/.exec(t.offset);
    if (om === null) return `${JSON.stringify(text)} has an invalid offset`;
    offsetMinutes = (om[1] === "-" ? -1 : 1) * (Number(om[2]) * 60 + Number(om[3]));
  }
  const micros = isoMicros(t, offsetMinutes);
  if (micros === undefined) return `${JSON.stringify(text)} is not a valid date`;
  return { micros, dateOnly: t.separator === undefined };
}

/** A row filter for `--since` (inclusive) and `--until` (exclusive; a bare date includes that whole day). */
export function timeFilter(since: TimeBound | undefined, until: TimeBound | undefined): (micros: number) => boolean {
  const from = since?.micros ?? -Infinity;
  const to = until === undefined ? Infinity : until.dateOnly ? until.micros + 86_400_000_000 : until.micros;
  return (micros) => micros >= from && micros < to;
}
