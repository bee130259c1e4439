import { createRequire } from "node:module";
import { loggedModel, type UsageEvent } from "../record/usage-event.js";

/** The mandatory columns, in the mandatory order. */
export const HEADER_FIELDS = ["TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens"] as const;
export const HEADER_LINE = HEADER_FIELDS.join(",");

// csv-writer publishes its TypeScript sources as its types, which do not compile under this
// project's strict ESM settings; it is loaded as the CommonJS module it is, typed by what we use,
// and only for the first field that needs quoting (it is most of the preload's start-up otherwise).
interface ArrayCsvStringifier {
  stringifyRecords(records: ReadonlyArray<ReadonlyArray<string | number>>): string;
}
type CsvWriter = { createArrayCsvStringifier(params: { alwaysQuote?: boolean }): ArrayCsvStringifier };
let quotingStringifier: ArrayCsvStringifier | undefined;

/**
 * One CSV field per RFC 4180, for every writer of usage logs (the preload and `mistral-usage
 * merge`). A field with a comma, quote, CR or LF is quoted by csv-writer; its always-quote mode is
 * used because its default mode leaves a lone CR unquoted, which RFC 4180 does not allow. Any
 * other field is written as it is, which is what csv-writer would do, without the call.
 */
export function csvField(value: string): string {
  if (!/[",\r\n]/.test(value)) return value;
  quotingStringifier ??= (createRequire(import.meta.url)("csv-writer") as CsvWriter).createArrayCsvStringifier({
    alwaysQuote: true,
  });
  return quotingStringifier.stringifyRecords([[value]]).slice(0, -1);
}

/** Formats rows as CSV lines, each ending in "\n". Only the model can need quoting. */
export function formatRows(rows: readonly UsageEvent[]): string {
  let text = "";
  for (const row of rows) {
    const { promptTokens, completionTokens, totalTokens } = row.counts;
    text += `${formatTimestamp(row.epochMicros)},${modelField(loggedModel(row))},${promptTokens},${completionTokens},${totalTokens}\n`;
  }
  return text;
}

// An app talks to one model, or a few, so the last model's field is kept.
let lastModel: string | undefined;
let lastModelField = "";

function modelField(model: string): string {
  if (model !== lastModel) {
    lastModelField = csvField(guardFormula(escapeControls(model)));
    lastModel = model;
  }
  return lastModelField;
}

// C0 controls (NUL, ESC, CR, LF, tab...), DEL and C1 controls (U+0080 to U+009F, CSI among them).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const CONTROLS = new RegExp(CONTROL.source, "g");
const NAMED_CONTROLS: Readonly<Record<string, string>> = { "\t": "\\t", "\n": "\\n", "\r": "\\r" };

/**
 * A model string from the network with its control characters written as escapes, `\n`, `\t`,
 * `\r` or `\xHH` (as Python's repr spells them): a NUL makes the log a binary file to every
 * reader (`mistral-usage validate` included), an ESC or CSI reaches the terminal of whoever `cat`s
 * the log, and a line break splits a row for every line-based tool. Backslashes are left as they
 * are: model names have none, and the escapes only need to be readable.
 */
export function escapeControls(model: string): string {
  if (!CONTROL.test(model)) return model;
  return model.replace(CONTROLS, (c) => NAMED_CONTROLS[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * Spreadsheets run a cell that starts with = + - @ (or tab/CR) as a formula; a model string from a
 * gateway or mock must not be able to do that to whoever opens the log (OWASP "CSV injection").
 * (The log's tab and CR are escaped before this guard; it still guards them for other callers.)
 */
export function guardFormula(model: string): string {
  return /^[=+\-@\t\r]/.test(model) ? `'${model}` : model;
}

/**
 * `2026-11-24T10:30:01.123456+00:00`: UTC, six fractional digits, `+00:00` rather than `Z`, which
 * Python 3.10's `datetime.fromisoformat` rejects; the same form as the guide's example.
 */
export function formatTimestamp(epochMicros: number): string {
  const second = Math.floor(epochMicros / 1_000_000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20); // 2026-11-24T10:30:01.
  }
  return `${cachedPrefix}${String(epochMicros - second * 1_000_000).padStart(6, "0")}+00:00`;
}
// Rows come in bursts within the same second: the date part is formatted once per second.
let cachedSecond = Number.NaN;
let cachedPrefix = "";
