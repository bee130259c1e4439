/**
 * Reads one usage log through the byte scanner (src/log/scan.ts) and the checks in check.ts.
 * Memory stays flat whatever the file's size: it is read in 1 MiB chunks, and each row is handed
 * to the caller and forgotten (unless the caller asks for the whole file's bytes, as merge does).
 */
import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { checkHeader, checkRow, isHeader, rowLine, sniffFormat, totalMismatch } from "../log/check.js";
import type { LogRow } from "../log/check.js";
import { formatTimestamp } from "../log/format.js";
import { LogScanner, STOPPED } from "../log/scan.js";
import type { CsvSyntaxError, ScanHandler } from "../log/scan.js";

export type Severity = "error" | "warning";

export interface Problem {
  readonly file: string;
  /** 1-based line where the record starts; 0 for the file as a whole. */
  readonly line: number;
  readonly severity: Severity;
  readonly message: string;
}

/** A record that is not a valid row, for callers that keep such records (`merge --keep-invalid`). */
export interface InvalidRecord {
  readonly line: number;
  readonly fields: readonly string[];
  /** The record's bytes, when they are not UTF-8 (the fields then hold U+FFFD for the bad bytes). */
  readonly raw?: Uint8Array;
}

/** Where a row's line is in the file's bytes (`ReadOptions.whole`), without its line break. */
export interface RowSpan {
  start: number;
  end: number;
  /** The bytes are exactly how merge writes this row (else it writes the row's values). */
  canonical: boolean;
}

export interface ReadHandlers {
  /** A valid row. `span` is only set with `whole`, and is reused: copy what you keep. */
  row?(row: LogRow, line: number, span: RowSpan): void;
  invalid?(record: InvalidRecord): void;
  problem?(problem: Problem): void;
}

export interface ReadOptions {
  /** Byte offset to start at. Above 0 there is no header to check (the tail of a log). */
  readonly start?: number;
  /** Keep the whole file in one buffer (returned as `FileResult.bytes`), with row spans into it. */
  readonly whole?: boolean;
  /** Called after each chunk with the bytes read so far and the file's size when reading began. */
  readonly progress?: (bytesRead: number, size: number) => void;
}

export interface FileResult {
  readonly file: string;
  /** Valid rows. */
  rows: number;
  /** Records that are not valid rows. */
  invalidRows: number;
  errors: number;
  warnings: number;
  /** Set when the file could not be read as a usage log (or not to its end); nothing after it was checked. */
  fatal?: string;
  /** The line of the fatal problem; 0 for the file as a whole. */
  fatalLine?: number;
  /** The file's bytes from `start`, with `ReadOptions.whole`. */
  bytes?: Buffer;
}

const HEAD_BYTES = 4096;
const CHUNK_BYTES = 1 << 20;
/** A record longer than this is not a usage log's (csv-parse would have held it all too). */
const MAX_RECORD_BYTES = 256 << 20;

/**
 * A row read from bytes. Its timestamp was in the preload's own form, so the text is the
 * preload's formatting of `micros`, made only when asked for (a report asks for two).
 */
class ScannedRow implements LogRow {
  constructor(
    readonly micros: number,
    readonly model: string,
    readonly promptTokens: number,
    readonly completionTokens: number,
    readonly totalTokens: number,
  ) {}
  get timestamp(): string {
    return formatTimestamp(this.micros);
  }
}

/** Reads `file` and reports its rows and problems to `handlers`. Never rejects for bad data. */
export async function readLog(file: string, handlers: ReadHandlers, options: ReadOptions = {}): Promise<FileResult> {
  const result: FileResult = { file, rows: 0, invalidRows: 0, errors: 0, warnings: 0 };
  const start = options.start ?? 0;
  const report = (line: number, severity: Severity, message: string): void => {
    if (severity === "error") result.errors++;
    else result.warnings++;
    handlers.problem?.({ file, line, severity, message });
  };
  const fail = (message: string, line = 0): FileResult => {
    result.fatal = message;
    result.fatalLine = line;
    report(line, "error", message);
    return result;
  };

  let handle: FileHandle;
  try {
    handle = await open(file, "r");
  } catch (err) {
    return fail(openError(err));
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) return fail("is a directory, not a log file");
    let headerPending = start === 0;
    const whole = options.whole === true;
    const span: RowSpan = { start: 0, end: 0, canonical: true };
    let scanner: LogScanner;
    let buf = Buffer.allocUnsafe(whole ? Math.max(stat.size - start, HEAD_BYTES) + 1 : CHUNK_BYTES);
    // buf[0] is the byte at file offset `base`; buf[pos, have) is read and not yet scanned.
    let base = start;
    let have = 0;
    let pos = 0;
    let lastByte = -1;
    let sniffed = false;
    // A pipe (validate /dev/stdin) is read as it comes; a file at offsets, from `start`.
    const seekable = stat.isFile();

    const record = (fields: string[], line: number, from: number, to: number): void => {
      if (headerPending) {
        headerPending = false;
        const problem = checkHeader(fields);
        if (problem !== undefined) {
          fail(problem, 1);
          scanner.stop();
        }
        return;
      }
      if (fields.length === 1 && fields[0] === "") {
        report(line, "warning", "blank line");
        return;
      }
      if (isHeader(fields)) {
        result.invalidRows++;
        report(line, "error", "the header line appears again: were logs joined with cat? Use mistral-usage merge to combine logs (one header, sorted, no duplicates)");
        handlers.invalid?.({ line, fields });
        return;
      }
      const checked = checkRow(fields);
      for (const w of checked.warnings) report(line, "warning", w);
      if (checked.ok) {
        result.rows++;
        if (handlers.row !== undefined) {
          if (whole) {
            span.start = base + from;
            span.end = base + to;
            // What merge would write for it, as the byte scanner decides for its rows (scan.ts).
            span.canonical = `${buf.toString("utf8", from, to)}\n` === rowLine(checked.row);
          }
          handlers.row(checked.row, line, span);
        }
      } else {
        result.invalidRows++;
        for (const e of checked.errors) report(line, "error", e);
        handlers.invalid?.({ line, fields });
      }
    };
    const handler: ScanHandler = {
      row(micros, model, prompt, completion, total, line, from, to, canonical) {
        result.rows++;
        if (total !== prompt + completion) report(line, "warning", totalMismatch(prompt, completion, total));
        if (handlers.row !== undefined) {
          span.start = base + from;
          span.end = base + to;
          span.canonical = canonical;
          handlers.row(new ScannedRow(micros, model, prompt, completion, total), line, span);
        }
      },
      record,
      notUtf8(line, from, to, at) {
        if (headerPending) {
          headerPending = false;
          fail(`the first line is not UTF-8 text (byte 0x${hex(buf[at])} at column ${at - from + 1}): save the file as UTF-8`, 1);
          scanner.stop();
          return;
        }
        result.invalidRows++;
        report(line, "error", `not UTF-8: byte 0x${hex(buf[at])} at column ${at - from + 1} (a Latin-1 or Windows-1252 file?); save the file as UTF-8`);
        const raw = Uint8Array.prototype.slice.call(buf, from, to);
        handlers.invalid?.({ line, fields: buf.toString("utf8", from, to).split(","), raw });
      },
      syntaxError(code, line) {
        fail(`not valid CSV: ${csvErrorMessage(code)}; the rest of the file was not read`, line);
      },
    };
    scanner = new LogScanner(handler, { header: headerPending });

    for (;;) {
      if (have === buf.length) {
        if (pos > 0 && !whole) {
          // Keep the unread tail (part of a line) and read on behind it.
          buf.copy(buf, 0, pos, have);
          base += pos;
          have -= pos;
          pos = 0;
        } else {
          if (buf.length >= MAX_RECORD_BYTES && !whole) return fail("not valid CSV: the record is too long (is this really a CSV file?); the rest of the file was not read", scanner.line);
          const bigger = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(bigger, 0, 0, have);
          buf = bigger;
        }
      }
      let n: number;
      try {
        // Chunks even into a whole-file buffer: scanning goes along, and so does the progress.
        n = (await handle.read(buf, have, Math.min(buf.length - have, CHUNK_BYTES * 4), seekable ? base + have : null)).bytesRead;
      } catch (err) {
        return fail(`could not be read: ${(err as Error).message}`);
      }
      if (n > 0) lastByte = buf[have + n - 1] as number;
      have += n;
      const eof = n === 0;
      if (!sniffed) {
        // The first bytes say whether this is a CSV log at all (gzip, UTF-16, JSON, CR endings...).
        if (have < HEAD_BYTES && !eof) continue;
        sniffed = true;
        if (start === 0) {
          const sniff = sniffFormat(buf.subarray(0, Math.min(have, HEAD_BYTES)));
          if (sniff.fatal !== undefined) return fail(sniff.fatal);
          for (const w of sniff.warnings) report(1, "warning", w);
          if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) pos = 3;
        } else if (have === 0) {
          return result;
        }
      }
      const next = scanner.scan(buf, pos, have, eof);
      if (next === STOPPED) return result;
      pos = next;
      options.progress?.(base + have - start, stat.size - start);
      if (eof) break;
    }
    if (whole) result.bytes = buf.subarray(0, have);
    if (headerPending) return fail(`has no header line (expected the first line to be the header)`);
    if (lastByte !== -1 && lastByte !== 0x0a && result.fatal === undefined && result.rows + result.invalidRows > 0) {
      report(0, "warning", "the last line has no line break at the end; a program appending to the file would join its row to that line");
    }
    return result;
  } finally {
    await handle.close().catch(() => {});
  }
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).toUpperCase().padStart(2, "0");
}

/** What a CSV syntax error means, in words (csv-parse's codes). */
function csvErrorMessage(code: CsvSyntaxError): string {
  switch (code) {
    case "CSV_QUOTE_NOT_CLOSED":
      return "a quoted field is never closed (the rest of the file belongs to it)";
    case "CSV_INVALID_CLOSING_QUOTE":
      return "a closing quote is followed by other characters instead of a comma or line end";
    case "INVALID_OPENING_QUOTE":
      return "a quote appears in the middle of an unquoted field";
  }
}

function openError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, not a log file";
    default:
      return `cannot be opened: ${(err as Error).message}`;
  }
}
