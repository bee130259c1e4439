import { createRequire } from "node:module";
import type { UsageRecord } from "../record/observed-call.js";

/** The mandatory columns, in the mandatory order. */
export const HEADER_FIELDS = ["TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens"] as const;
export const HEADER_LINE = HEADER_FIELDS.join(",");

export interface UsageRow extends UsageRecord {
  /** When the usage was logged, in microseconds since the Unix epoch. */
  readonly epochMicros: number;
}

// csv-writer publishes its TypeScript sources as its types, which do not compile under this
// project's strict ESM settings; it is loaded as the CommonJS module it is, typed by what we use.
interface ArrayCsvStringifier {
  stringifyRecords(records: ReadonlyArray<ReadonlyArray<string | number>>): string;
}
const { createArrayCsvStringifier } = createRequire(import.meta.url)("csv-writer") as {
  createArrayCsvStringifier(params: { alwaysQuote?: boolean }): ArrayCsvStringifier;
};

const stringifier = createArrayCsvStringifier({});
// csv-writer quotes on comma, quote and LF but not on a lone CR, which RFC 4180 also requires quoted.
const quotingStringifier = createArrayCsvStringifier({ alwaysQuote: true });

/** Formats rows as CSV lines, each ending in "\n". Pure. */
export function formatRows(rows: readonly UsageRow[]): string {
  let text = "";
  for (const row of rows) {
    const model = guardFormula(row.model);
    const fields = [
      formatTimestamp(row.epochMicros),
      model,
      row.counts.promptTokens,
      row.counts.completionTokens,
      row.counts.totalTokens,
    ];
    text += (model.includes("\r") ? quotingStringifier : stringifier).stringifyRecords([fields]);
  }
  return text;
}

/**
 * Spreadsheets run a cell that starts with = + - @ (or tab/CR) as a formula; a model string from a
 * gateway or mock must not be able to do that to whoever opens the log (OWASP "CSV injection").
 */
export function guardFormula(model: string): string {
  return /^[=+\-@\t\r]/.test(model) ? `'${model}` : model;
}

/**
 * `2026-11-24T10:30:01.123456+00:00`: UTC, six fractional digits, `+00:00` rather than `Z`, which
 * Python 3.10's `datetime.fromisoformat` rejects; the same form as the guide's example.
 */
export function formatTimestamp(epochMicros: number): string {
  const millis = Math.floor(epochMicros / 1000);
  const micros = epochMicros - millis * 1000;
  const iso = new Date(millis).toISOString(); // 2026-11-24T10:30:01.123Z
  return `${iso.slice(0, 23)}${String(micros).padStart(3, "0")}+00:00`;
}

/**
 * Wall-clock time with microseconds. `Date` has milliseconds only; the sub-millisecond part comes
 * from the monotonic clock (`performance.timeOrigin + performance.now()`). The two are re-anchored
 * only when they disagree by more than a clock step would explain (NTP steps, suspend), and small
 * disagreements never make the time go backwards, so rows logged in order keep their order.
 */
export class MicrosecondClock {
  static readonly #STEP_MILLIS = 20;
  #offsetMillis = performance.timeOrigin;
  #lastMicros = 0;

  nowMicros(): number {
    const wall = Date.now();
    let precise = performance.now() + this.#offsetMillis;
    if (Math.abs(precise - wall) > MicrosecondClock.#STEP_MILLIS) {
      this.#offsetMillis = wall - performance.now();
      precise = wall;
    }
    let micros = Math.floor(precise * 1000);
    // A backward step smaller than the tolerance is jitter between the two clocks, not a clock change.
    if (micros < this.#lastMicros && this.#lastMicros - micros <= MicrosecondClock.#STEP_MILLIS * 1000) {
      micros = this.#lastMicros;
    }
    this.#lastMicros = micros;
    return micros;
  }
}
