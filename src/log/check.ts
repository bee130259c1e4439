/**
 * The mandatory log format, as pure checks: the first bytes of a file, the header, one row.
 * No I/O; `log-reader.ts` streams a file through these.
 */
import { HEADER_FIELDS, HEADER_LINE, csvField } from "./format.js";

export { HEADER_FIELDS, HEADER_LINE };

const COLUMN_COUNT = HEADER_FIELDS.length;

/** One valid row of a usage log. */
export interface LogRow {
  /** The timestamp as written in the file. */
  readonly timestamp: string;
  /** The same instant in microseconds since the Unix epoch (UTC). */
  readonly micros: number;
  readonly model: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
}

export type RowCheck =
  | { readonly ok: true; readonly row: LogRow; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly errors: readonly string[]; readonly warnings: readonly string[] };

const NONE: readonly string[] = Object.freeze([]);

/** What the first bytes of a file say about it: a fatal reason it is not a CSV log, and warnings. */
export interface Sniff {
  readonly fatal?: string;
  readonly warnings: readonly string[];
}

/**
 * Recognises files that are not a UTF-8 CSV at all, from their first bytes (a few KiB), so that
 * they get one clear sentence instead of a CSV parser's complaint about line 1.
 */
export function sniffFormat(head: Uint8Array): Sniff {
  if (head.length === 0) return { fatal: `is empty: it has no header line (expected ${HEADER_LINE})`, warnings: NONE };
  const b = (i: number): number | undefined => head[i];
  if (b(0) === 0x1f && b(1) === 0x8b) return { fatal: "is gzip-compressed, not a CSV file: decompress it first (gunzip)", warnings: NONE };
  if (b(0) === 0x50 && b(1) === 0x4b && b(2) === 0x03 && b(3) === 0x04) {
    return { fatal: "is a ZIP archive (a spreadsheet such as .xlsx or .ods?), not a CSV file: export it as CSV (UTF-8)", warnings: NONE };
  }
  if ((b(0) === 0xff && b(1) === 0xfe) || (b(0) === 0xfe && b(1) === 0xff)) {
    return { fatal: "is UTF-16 encoded: save it as UTF-8 CSV", warnings: NONE };
  }
  if (head.includes(0)) return { fatal: "is a binary file (it contains NUL bytes), not a CSV file", warnings: NONE };
  const bom = b(0) === 0xef && b(1) === 0xbb && b(2) === 0xbf;
  let i = bom ? 3 : 0;
  while (i < head.length && (head[i] === 0x20 || head[i] === 0x09 || head[i] === 0x0a || head[i] === 0x0d)) i++;
  if (head[i] === 0x7b || head[i] === 0x5b) {
    return { fatal: `looks like JSON, not CSV: the log is a CSV file whose first line is ${HEADER_LINE}`, warnings: NONE };
  }
  // Classic Mac "CSV" ends lines in CR alone: read as LF lines, the whole file is one huge header.
  const lf = head.indexOf(0x0a, i);
  const cr = head.indexOf(0x0d, i);
  if (cr !== -1 && (lf === -1 || cr < lf) && cr + 1 < head.length && head[cr + 1] !== 0x0a) {
    return { fatal: "uses CR line endings (an old Mac export): lines must end in LF or CRLF; convert it first, e.g. tr '\\r' '\\n' < OLD.csv > NEW.csv", warnings: NONE };
  }
  const warnings = bom ? ["starts with a UTF-8 byte order mark (BOM); some CSV readers then see the first column as \"\\ufeffTimestampUTC\""] : NONE;
  return { warnings };
}

/** Whether these fields are exactly the mandatory header. */
export function isHeader(fields: readonly string[]): boolean {
  return fields.length === COLUMN_COUNT && fields.every((f, i) => f === HEADER_FIELDS[i]);
}

/** Why the first record is not the mandatory header, or undefined when it is. */
export function checkHeader(fields: readonly string[]): string | undefined {
  if (isHeader(fields)) return undefined;
  const shown = fields.map((f) => display(f)).join(",");
  const only = fields[0] ?? "";
  if (fields.length === 1) {
    if (only.includes(";")) return `uses ";" between fields; the format uses commas (header ${HEADER_LINE})`;
    if (only.includes("\t")) return `uses tabs between fields (TSV); the format uses commas (header ${HEADER_LINE})`;
  }
  if (fields.length >= 1 && typeof parseTimestamp(only) === "number") {
    return `has no header: line 1 is a data row, and the first line must be ${HEADER_LINE}`;
  }
  if (fields.length === COLUMN_COUNT && fields.every((f, i) => f.toLowerCase() === HEADER_FIELDS[i]?.toLowerCase())) {
    return `header ${shown} differs from ${HEADER_LINE} in upper/lower case`;
  }
  if (fields.length === COLUMN_COUNT && fields.every((f, i) => f.trim() === HEADER_FIELDS[i])) {
    return `header ${shown} has spaces around the column names; it must be exactly ${HEADER_LINE}`;
  }
  const sameSet = fields.length === COLUMN_COUNT && [...fields].sort().join(",") === [...HEADER_FIELDS].sort().join(",");
  if (sameSet) return `header ${shown} has the right columns in the wrong order; it must be ${HEADER_LINE}`;
  for (let i = 0; i < COLUMN_COUNT; i++) {
    const got = fields[i];
    const expected = HEADER_FIELDS[i] as string;
    if (got === undefined) return `header ${shown} has ${fields.length} column${fields.length === 1 ? "" : "s"}, expected ${COLUMN_COUNT}: ${HEADER_LINE}`;
    if (got !== expected) return `header ${shown} is not ${HEADER_LINE}: column ${i + 1} is ${display(got)}, expected ${expected}`;
  }
  return `header ${shown} has ${fields.length} columns, expected exactly ${COLUMN_COUNT}: ${HEADER_LINE}`;
}

const EXAMPLE = "2026-11-24T10:30:01.123456+00:00";

/** An ISO 8601 date or date-time as written, before any range check. */
export interface IsoDateTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  /** "T", " ", or undefined for a bare date. */
  readonly separator?: string;
  readonly hour: number;
  readonly minute: number;
  /** Undefined when the seconds are left out (`2026-11-24T10:30`). */
  readonly second?: number;
  /** Microseconds from the fraction (1 to 9 digits, cut to 6). */
  readonly fraction: number;
  /** "Z", "+00:00", "-0500", ..., or undefined. */
  readonly offset?: string;
}

// The one grammar of dates and times, for the log's timestamps and for --since / --until alike.
const ISO_DATE_TIME = /^(\d{4})-(\d\d)-(\d\d)(?:([T ])(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?(Z|[+-]\d\d:?\d\d)?$/;

/** Splits an ISO 8601 date or date-time into its parts; undefined when it is not one. */
export function parseIsoDateTime(text: string): IsoDateTime | undefined {
  const m = ISO_DATE_TIME.exec(text);
  if (m === null) return undefined;
  const [, ys, mos, ds, separator, hs, mis, ss, frac, offset] = m;
  return {
    year: Number(ys),
    month: Number(mos),
    day: Number(ds),
    hour: Number(hs ?? 0),
    minute: Number(mis ?? 0),
    fraction: frac === undefined ? 0 : Number(frac.padEnd(6, "0").slice(0, 6)),
    ...(separator === undefined ? {} : { separator }),
    ...(ss === undefined ? {} : { second: Number(ss) }),
    ...(offset === undefined ? {} : { offset }),
  };
}

/**
 * The instant of `t` in microseconds since the epoch, the wall time being `offsetMinutes` ahead of
 * UTC; undefined for a date or time that does not exist (February 30, 24:00, 10:60).
 */
export function isoMicros(t: IsoDateTime, offsetMinutes = 0): number | undefined {
  const second = t.second ?? 0;
  if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > daysInMonth(t.year, t.month) || t.hour > 23 || t.minute > 59 || second > 59) return undefined;
  return (daysFromCivil(t.year, t.month, t.day) * 86_400 + t.hour * 3_600 + t.minute * 60 + second - offsetMinutes * 60) * 1_000_000 + t.fraction;
}

/**
 * Parses an ISO 8601 UTC timestamp (`2026-11-24T10:30:01.123456+00:00`; `Z` and a missing or
 * shorter fraction are accepted) to microseconds since the epoch, or says what is wrong (a string).
 * Rows in the preload's own form are read from bytes before they are strings (src/log/scan.ts).
 */
export function parseTimestamp(text: string): number | string {
  const t = parseIsoDateTime(text);
  if (t === undefined || t.separator !== "T" || t.second === undefined) {
    if (text === "") return "TimestampUTC is empty";
    if (/^\d{4}-\d\d-\d\d \d\d:\d\d/.test(text)) return `TimestampUTC ${display(text)} has a space between date and time; ISO 8601 needs a T (e.g. ${EXAMPLE})`;
    if (/^\d{9,}(\.\d+)?$/.test(text)) return `TimestampUTC ${display(text)} looks like Unix time; the format needs ISO 8601 (e.g. ${EXAMPLE})`;
    if (text.trim() !== text) return `TimestampUTC ${display(text)} has spaces around it`;
    return `TimestampUTC ${display(text)} is not an ISO 8601 timestamp (e.g. ${EXAMPLE})`;
  }
  const offset = t.offset;
  if (offset === undefined) return `TimestampUTC ${display(text)} has no UTC offset: add +00:00 (e.g. ${EXAMPLE})`;
  if (offset !== "Z" && offset !== "+00:00") {
    if (/^[+-]00:?00$/.test(offset)) return `TimestampUTC ${display(text)} has offset ${offset}; write UTC as +00:00`;
    return `TimestampUTC ${display(text)} is not in UTC (offset ${offset}); convert it to +00:00`;
  }
  return isoMicros(t) ?? `TimestampUTC ${display(text)} is not a valid date and time`;
}

/** The decimal number in t[from, to), or -1 if a character is not a digit. */
function digits(t: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = t.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Warnings about a timestamp that parsed: readers that would still trip over it. */
function timestampWarning(text: string): string | undefined {
  if (text.length === 32 && text.endsWith("+00:00")) return undefined;
  if (text.endsWith("Z")) return `TimestampUTC ${display(text)} ends in Z; Python 3.10's datetime.fromisoformat rejects that, and the guide's format uses +00:00`;
  const fraction = /\.(\d+)/.exec(text)?.[1];
  if (fraction !== undefined && fraction.length !== 3 && fraction.length !== 6) {
    return `TimestampUTC ${display(text)} has ${fraction.length} fractional digits; Python 3.10's datetime.fromisoformat reads only 3 or 6`;
  }
  return undefined;
}

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; no Date quirks for years < 100). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** Parses a token count: a non-negative integer in plain decimal digits. */
export function parseCount(text: string, column: string): number | string {
  if (text.length > 0 && text.length < 16) {
    const n = digits(text, 0, text.length);
    if (n >= 0) return n;
  }
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : `${column} ${display(text)} is too large`;
  }
  if (text === "") return `${column} is empty`;
  if (/^-\d+(\.\d+)?$/.test(text)) return `${column} ${display(text)} is negative`;
  if (/^\d+\.\d*$|^\d*\.\d+$|^\d+(\.\d+)?[eE][+-]?\d+$/.test(text)) return `${column} ${display(text)} is not a whole number`;
  if (text.trim() !== text && /^\d+$/.test(text.trim())) return `${column} ${display(text)} has spaces around it`;
  return `${column} ${display(text)} is not a non-negative integer`;
}

/**
 * Checks one record (the fields after CSV unquoting) against the mandatory format. A total that
 * differs from prompt + completion is a warning only: the API reports such totals for moderation
 * and transcription calls.
 */
export function checkRow(fields: readonly string[]): RowCheck {
  if (fields.length !== COLUMN_COUNT) {
    return { ok: false, errors: [`has ${fields.length} field${fields.length === 1 ? "" : "s"}, expected ${COLUMN_COUNT} (${HEADER_LINE})`], warnings: NONE };
  }
  const [timestamp, model, prompt, completion, total] = fields as [string, string, string, string, string];
  let errors: string[] | undefined;
  const micros = parseTimestamp(timestamp);
  if (typeof micros === "string") (errors ??= []).push(micros);
  if (model.trim() === "") (errors ??= []).push("Model is empty");
  const promptTokens = parseCount(prompt, "PromptTokens");
  if (typeof promptTokens === "string") (errors ??= []).push(promptTokens);
  const completionTokens = parseCount(completion, "CompletionTokens");
  if (typeof completionTokens === "string") (errors ??= []).push(completionTokens);
  const totalTokens = parseCount(total, "TotalTokens");
  if (typeof totalTokens === "string") (errors ??= []).push(totalTokens);

  let warnings: string[] | undefined;
  const tsWarning = typeof micros === "number" ? timestampWarning(timestamp) : undefined;
  if (tsWarning !== undefined) (warnings ??= []).push(tsWarning);
  if (typeof promptTokens === "number" && typeof completionTokens === "number" && typeof totalTokens === "number") {
    if (totalTokens !== promptTokens + completionTokens) (warnings ??= []).push(totalMismatch(promptTokens, completionTokens, totalTokens));
  }
  if (errors !== undefined || typeof micros !== "number" || typeof promptTokens !== "number" || typeof completionTokens !== "number" || typeof totalTokens !== "number") {
    return { ok: false, errors: errors ?? NONE, warnings: warnings ?? NONE };
  }
  return { ok: true, row: { timestamp, micros, model, promptTokens, completionTokens, totalTokens }, warnings: warnings ?? NONE };
}

/** The warning for a total other than prompt + completion (moderation and transcription report such totals). */
export function totalMismatch(promptTokens: number, completionTokens: number, totalTokens: number): string {
  return `TotalTokens ${totalTokens} is not PromptTokens + CompletionTokens (${promptTokens + completionTokens}); the API reports such totals for some endpoints`;
}

/** Formats the instant of `micros` the way the preload writes it: the preload's own formatter. */
export { formatTimestamp as formatMicros } from "./format.js";

/**
 * A value quoted for a message: JSON string syntax, so control characters, quotes and terminal
 * escape sequences from a file can neither hide nor act; long values are cut.
 */
export function display(value: string, max = 60): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut);
}


/** One CSV line (with LF) from fields. */
export function csvLine(fields: readonly string[]): string {
  let line = "";
  for (let i = 0; i < fields.length; i++) line += (i === 0 ? "" : ",") + csvField(fields[i] as string);
  return `${line}\n`;
}

/** The line a row is written as: its timestamp as given, its counts as plain numbers (no leading zeros). */
export function rowLine(row: LogRow): string {
  return csvLine([row.timestamp, row.model, String(row.promptTokens), String(row.completionTokens), String(row.totalTokens)]);
}
