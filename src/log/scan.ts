/**
 * Splits the bytes of a usage log into records (RFC 4180) without a string per field. A row in the
 * form the preload writes (`2026-11-24T10:30:01.123456+00:00,model,15,8,23`) is read straight from
 * the bytes: its timestamp and counts as numbers, its model from a cache of the names seen. Any
 * other record (the header, quoted fields, Z timestamps, blank lines, anything wrong) is handed on
 * as unquoted fields, for the checks in check.ts to explain. Pure: no I/O; log-reader.ts feeds it.
 *
 * Why by hand: csv-parse builds a string per field and an array per record, and the checks then
 * parse those strings again; on a million-row log that was 3.3 s where reading the bytes takes
 * tens of milliseconds. Errors are the ones csv-parse reports (test/unit/log/scan.test.ts compares
 * the two on generated input).
 */
import { isUtf8 } from "node:buffer";
import { daysFromCivil, daysInMonth } from "./check.js";

/** The CSV syntax errors, named as csv-parse names them. */
export type CsvSyntaxError = "CSV_QUOTE_NOT_CLOSED" | "CSV_INVALID_CLOSING_QUOTE" | "INVALID_OPENING_QUOTE";

export interface ScanHandler {
  /**
   * A row in the preload's form. `start`/`end` are the line's bytes without its line break;
   * `canonical` says that they are exactly what the row would be written as (no leading zeros).
   */
  row(micros: number, model: string, prompt: number, completion: number, total: number, line: number, start: number, end: number, canonical: boolean): void;
  /** Any other record, as unquoted fields; `start`/`end` as for `row`. */
  record(fields: string[], line: number, start: number, end: number): void;
  /** A record that is not UTF-8; `at` is the offset of its first bad byte. */
  notUtf8(line: number, start: number, end: number, at: number): void;
  /**
   * A CSV syntax error: nothing after it can be read reliably. `line` is where the offending
   * character is (counting LF line breaks, also inside quotes), or for a quote never closed, where
   * it opens. (csv-parse also counted a CR inside quotes as a line, and gave the end for the latter.)
   */
  syntaxError(code: CsvSyntaxError, line: number): void;
}

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

/** Returned by `scan` after a syntax error or `stop()`. */
export const STOPPED = -1;

/** The longest count read from bytes; longer ones go to parseCount, which says "too large". */
const MAX_COUNT_DIGITS = 15;

interface CachedModel {
  readonly bytes: Uint8Array;
  readonly text: string;
}

export class LogScanner {
  /** The 1-based line the next record starts on. */
  line = 1;
  #header: boolean;
  #stopped = false;
  readonly #handler: ScanHandler;
  readonly #models = new Map<number, CachedModel[]>();
  // The date of the previous fast row, as yyyymmdd and as days since the epoch.
  #ymd = -1;
  #days = 0;

  /** With `header`, the first record always goes to `record()` (for the header check). */
  constructor(handler: ScanHandler, options: { header: boolean }) {
    this.#handler = handler;
    this.#header = options.header;
  }

  /** Makes `scan` return STOPPED after the current record (a fatal problem found by the handler). */
  stop(): void {
    this.#stopped = true;
  }

  /**
   * Reads the records in buf[pos, end). Without `eof`, a record is read only when its line break
   * is there; the return value is where the first unread record starts (read on when more bytes
   * come), or STOPPED.
   */
  scan(buf: Buffer, pos: number, end: number, eof: boolean): number {
    if (this.#stopped) return STOPPED;
    const limit = eof ? end : buf.lastIndexOf(LF, end - 1) + 1;
    if (limit <= pos) return pos;
    // One native check of the whole stretch; only a stretch with a bad byte is checked line by line.
    const checkLines = !isUtf8(buf.subarray(pos, limit));
    while (pos < limit) {
      if (!checkLines && !this.#header) {
        const next = this.#fastRow(buf, pos, limit, eof);
        if (next > 0) {
          pos = next;
          continue;
        }
      }
      this.#header = false;
      const next = this.#record(buf, pos, limit, end, eof, checkLines);
      if (next === STOPPED || this.#stopped) return STOPPED;
      if (next === pos) return pos; // a quoted record that goes on past `end`
      pos = next;
    }
    return pos;
  }

  /** Reads one row in the preload's form at `s`; 0 if the line is anything else. */
  #fastRow(b: Buffer, s: number, limit: number, eof: boolean): number {
    const e = s + 32;
    if (e >= limit) return 0;
    // YYYY-MM-DDTHH:MM:SS.ffffff+00:00 then a comma.
    if (b[s + 4] !== 45 || b[s + 7] !== 45 || b[s + 10] !== 84 || b[s + 13] !== 58 || b[s + 16] !== 58 || b[s + 19] !== 46) return 0;
    if (b[s + 26] !== 43 || b[s + 27] !== 48 || b[s + 28] !== 48 || b[s + 29] !== 58 || b[s + 30] !== 48 || b[s + 31] !== 48 || b[e] !== COMMA) return 0;
    const hour = digitsAt(b, s + 11, 2);
    const minute = digitsAt(b, s + 14, 2);
    const second = digitsAt(b, s + 17, 2);
    const fraction = digitsAt(b, s + 20, 6);
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || fraction < 0) return 0;
    const year = digitsAt(b, s, 4);
    const month = digitsAt(b, s + 5, 2);
    const day = digitsAt(b, s + 8, 2);
    if (year < 0 || month < 0 || day < 0) return 0;
    const ymd = year * 10_000 + month * 100 + day;
    if (ymd !== this.#ymd) {
      if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return 0;
      this.#ymd = ymd;
      this.#days = daysFromCivil(year, month, day);
    }
    const micros = (this.#days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000 + fraction;

    // The model: no quote, no line break, at least one visible ASCII character (so never blank).
    // The common name is printable ASCII throughout; anything else is looked at once more below.
    let i = e + 1;
    const modelStart = i;
    let plain = true;
    for (; ; i++) {
      if (i >= limit) return 0;
      const c = b[i] as number;
      if (c === COMMA) break;
      if (c < 0x21 || c > 0x7e || c === QUOTE) plain = false;
    }
    if (i === modelStart) return 0;
    let ascii = true;
    if (!plain) {
      let visible = false;
      for (let j = modelStart; j < i; j++) {
        const c = b[j] as number;
        if (c === QUOTE || c === LF || c === CR) return 0;
        if (c >= 0x80) ascii = false;
        else if (c > 0x20 && c < 0x7f) visible = true;
      }
      if (!visible) return 0;
    }
    const modelEnd = i;

    i = this.#countBeforeComma(b, i + 1, limit);
    if (i < 0) return 0;
    const prompt = this.#count;
    let canonical = !this.#padded;
    i = this.#countBeforeComma(b, i + 1, limit);
    if (i < 0) return 0;
    const completion = this.#count;
    canonical &&= !this.#padded;

    const start = ++i;
    let total = 0;
    let next: number;
    for (; ; i++) {
      if (i >= limit) {
        if (!eof) return 0;
        next = i;
        break;
      }
      const c = b[i] as number;
      if (c === LF) {
        next = i + 1;
        break;
      }
      if (c === CR) {
        if (b[i + 1] !== LF || i + 1 >= limit) return 0;
        next = i + 2;
        break;
      }
      const d = c - 48;
      if (d < 0 || d > 9) return 0;
      total = total * 10 + d;
    }
    if (i === start || i - start > MAX_COUNT_DIGITS) return 0;
    if (i - start > 1 && b[start] === 48) canonical = false;

    const model = this.#model(b, modelStart, modelEnd, ascii);
    const line = this.line++;
    this.#handler.row(micros, model, prompt, completion, total, line, s, i, canonical);
    return next;
  }

  /**
   * Reads the count in b[at, comma) into #count (and whether it has a leading zero into #padded);
   * returns the comma's offset, or -1 when the field is not a plain count of 1 to 15 digits.
   */
  #countBeforeComma(b: Buffer, at: number, limit: number): number {
    let n = 0;
    let i = at;
    for (; ; i++) {
      if (i >= limit) return -1;
      const c = (b[i] as number) - 48;
      if (c === COMMA - 48) break;
      if (c < 0 || c > 9) return -1;
      n = n * 10 + c;
    }
    if (i === at || i - at > MAX_COUNT_DIGITS) return -1;
    this.#count = n;
    this.#padded = i - at > 1 && b[at] === 48;
    return i;
  }
  #count = 0;
  #padded = false;

  /** The model's string: a log names a few models over and over, so each is decoded once. */
  #model(b: Buffer, start: number, end: number, ascii: boolean): string {
    const length = end - start;
    // A key from the length and three bytes; names that share it are told apart byte by byte.
    const key = (((length * 257 + (b[start] as number)) * 257 + (b[start + (length >> 1)] as number)) * 257 + (b[end - 1] as number)) | 0;
    let bucket = this.#models.get(key);
    if (bucket !== undefined) {
      for (const cached of bucket) {
        if (cached.bytes.length !== length) continue;
        let same = true;
        for (let i = 0; i < length; i++) {
          if (cached.bytes[i] !== b[start + i]) {
            same = false;
            break;
          }
        }
        if (same) return cached.text;
      }
    }
    const text = b.toString(ascii ? "latin1" : "utf8", start, end);
    if (this.#cached < 4096) {
      if (bucket === undefined) this.#models.set(key, (bucket = []));
      bucket.push({ bytes: Uint8Array.prototype.slice.call(b, start, end), text });
      this.#cached++;
    }
    return text;
  }
  #cached = 0;

  /**
   * Reads any record at `s` into fields. Returns where the next record starts, `s` itself when a
   * quoted field runs past `end` before the end of the file, or STOPPED.
   */
  #record(b: Buffer, s: number, limit: number, end: number, eof: boolean, checkLines: boolean): number {
    const line = this.line;
    const fields: string[] = [];
    let breaks = 0;
    let i = s;
    let fieldStart = s;
    let recordEnd = -1;
    let next = -1;
    // One field per turn of this loop.
    for (;;) {
      if (b[i] === QUOTE && i < end) {
        // A quoted field: "" is a quote; it ends at a quote followed by a comma, a line break or the end.
        const opensOn = line + breaks;
        let text = "";
        let from = i + 1;
        let j = from;
        for (;;) {
          if (j >= end) {
            if (!eof) return s;
            this.#handler.syntaxError("CSV_QUOTE_NOT_CLOSED", opensOn);
            return STOPPED;
          }
          const c = b[j];
          if (c === LF) breaks++;
          if (c !== QUOTE) {
            j++;
            continue;
          }
          if (b[j + 1] === QUOTE && j + 1 < end) {
            text += b.toString("utf8", from, j + 1);
            j += 2;
            from = j;
            continue;
          }
          break;
        }
        text += b.toString("utf8", from, j);
        fields.push(text);
        i = j + 1;
        if (i >= end) {
          if (!eof) return s;
          recordEnd = i;
          next = i;
          break;
        }
        const c = b[i];
        if (c === COMMA) {
          fieldStart = ++i;
          if (i >= end && !eof) return s;
          if (i >= end) {
            fields.push("");
            recordEnd = next = i;
            break;
          }
          continue;
        }
        if (c === LF) {
          recordEnd = i;
          next = i + 1;
          break;
        }
        if (c === CR && i + 1 < end && b[i + 1] === LF) {
          recordEnd = i;
          next = i + 2;
          break;
        }
        if (c === CR && i + 1 >= end && !eof) return s;
        this.#handler.syntaxError("CSV_INVALID_CLOSING_QUOTE", line + breaks);
        return STOPPED;
      }
      // An unquoted field: up to a comma or a line break (LF or CRLF); a quote inside is an error.
      let j = fieldStart;
      for (;;) {
        if (j >= limit) {
          if (j >= end && !eof) return s;
          if (j >= end) break;
        }
        const c = b[j];
        if (c === COMMA || c === LF) break;
        if (c === CR && b[j + 1] === LF && j + 1 < end) break;
        if (c === QUOTE) {
          this.#handler.syntaxError("INVALID_OPENING_QUOTE", line + breaks);
          return STOPPED;
        }
        j++;
      }
      fields.push(b.toString("utf8", fieldStart, j));
      if (j >= end) {
        recordEnd = next = j;
        break;
      }
      const c = b[j];
      if (c === COMMA) {
        i = fieldStart = j + 1;
        if (i >= end) {
          if (!eof) return s;
          fields.push("");
          recordEnd = next = i;
          break;
        }
        continue;
      }
      recordEnd = j;
      next = c === LF ? j + 1 : j + 2;
      break;
    }
    this.line += 1 + breaks;
    if (checkLines || recordEnd > limit) {
      const bytes = b.subarray(s, recordEnd);
      if (!isUtf8(bytes)) {
        this.#handler.notUtf8(line, s, recordEnd, s + firstInvalidUtf8(bytes));
        return next;
      }
    }
    this.#handler.record(fields, line, s, recordEnd);
    return next;
  }
}

/** The decimal number in the `n` bytes at `at`, or -1 if one is not a digit. */
function digitsAt(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const c = (b[i] as number) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** The offset of the first byte that breaks UTF-8 in `bytes` (which isUtf8 said is not UTF-8). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; ) {
    const c = bytes[i] as number;
    const n = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (n < 0 || !isUtf8(bytes.subarray(i, i + n + 1))) return i;
    i += n + 1;
  }
  return 0;
}
