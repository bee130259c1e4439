/**
 * Streams one usage log through csv-parse and the checks in log-format.ts. Memory stays flat
 * whatever the file's size: each record is handed to the caller and forgotten.
 */
import { open } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { parse } from "csv-parse";
import type { CsvError } from "csv-parse";
import { checkHeader, checkRow, sniffFormat } from "../log/check.js";
import type { LogRow } from "../log/check.js";

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
}

export interface ReadHandlers {
  row?(row: LogRow, line: number): void;
  invalid?(record: InvalidRecord): void;
  problem?(problem: Problem): void;
}

export interface ReadOptions {
  /** Byte offset to start at. Above 0 there is no header to check (the tail of a log). */
  readonly start?: number;
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
}

const HEAD_BYTES = 4096;

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
  let streaming = false;
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) return fail("is a directory, not a log file");
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(head, 0, HEAD_BYTES, start);
    let endsWithNewline = true;
    if (stat.size > start) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, stat.size - 1);
      endsWithNewline = last[0] === 0x0a;
    }
    if (start === 0) {
      const sniff = sniffFormat(head.subarray(0, bytesRead));
      if (sniff.fatal !== undefined) return fail(sniff.fatal);
      for (const w of sniff.warnings) report(1, "warning", w);
    } else if (bytesRead === 0) {
      return result;
    }

    let headerPending = start === 0;
    let nextLine = 1;
    const controller = new AbortController();
    const onRecord = (fields: string[]): void => {
      // The parser may still hand over records of the current chunk after a fatal problem.
      if (result.fatal !== undefined) return;
      const line = nextLine;
      nextLine += 1 + countLineBreaks(fields);
      if (headerPending) {
        headerPending = false;
        const problem = checkHeader(fields);
        if (problem !== undefined) {
          fail(problem, 1);
          controller.abort();
        }
        return;
      }
      if (fields.length === 1 && fields[0] === "") {
        report(line, "warning", "blank line");
        return;
      }
      const checked = checkRow(fields);
      for (const w of checked.warnings) report(line, "warning", w);
      if (checked.ok) {
        result.rows++;
        handlers.row?.(checked.row, line);
      } else {
        result.invalidRows++;
        for (const e of checked.errors) report(line, "error", e);
        handlers.invalid?.({ line, fields });
      }
    };
    const parser = parse({
      bom: true,
      // Both line endings, in any mix (a CRLF header followed by LF rows is common after an editor).
      record_delimiter: ["\r\n", "\n"],
      relax_column_count: true,
      skip_records_with_error: true,
      // A CSV syntax error (a stray or unbalanced quote) ends the reading: csv-parse stays inside the
      // quoted field afterwards, so the lines after it would be misread or silently swallowed.
      on_skip: (err: CsvError | undefined) => {
        if (result.fatal !== undefined) return undefined;
        const line = errorLine(err, nextLine);
        fail(`not valid CSV: ${csvErrorMessage(err)}; the rest of the file was not read`, line);
        controller.abort();
        return undefined;
      },
    });
    parser.on("data", onRecord);
    streaming = true;
    const stream = handle.createReadStream({ start, highWaterMark: 1 << 20, autoClose: true });
    try {
      await pipeline(stream, parser, { signal: controller.signal });
    } catch (err) {
      if (!controller.signal.aborted) {
        const code = (err as NodeJS.ErrnoException).code;
        if (typeof code === "string" && code.startsWith("CSV_")) return fail(`is not a readable CSV file: ${csvErrorMessage(err as CsvError)}`, nextLine);
        return fail(`could not be read: ${(err as Error).message}`);
      }
    }
    if (headerPending) return fail(`has no header line (expected the first line to be the header)`);
    if (!endsWithNewline && result.fatal === undefined && result.rows + result.invalidRows > 0) {
      report(0, "warning", "the last line has no line break at the end; a program appending to the file would join its row to that line");
    }
    return result;
  } finally {
    if (!streaming) await handle.close().catch(() => {});
  }
}

/** Line breaks inside the fields of a record (quoted fields may hold them), so later records keep their line numbers. */
function countLineBreaks(fields: readonly string[]): number {
  let n = 0;
  for (const f of fields) {
    let i = f.indexOf("\n");
    while (i !== -1) {
      n++;
      i = f.indexOf("\n", i + 1);
    }
  }
  return n;
}

function errorLine(err: CsvError | undefined, fallback: number): number {
  const lines = (err as { lines?: unknown } | undefined)?.lines;
  return typeof lines === "number" && lines >= 1 ? lines : fallback;
}

/** csv-parse's message without its own "at line N" (we print the line in front). */
function csvErrorMessage(err: CsvError | undefined): string {
  switch (err?.code) {
    case "CSV_QUOTE_NOT_CLOSED":
      return "a quoted field is never closed (the rest of the file belongs to it)";
    case "CSV_INVALID_CLOSING_QUOTE":
      return "a closing quote is followed by other characters instead of a comma or line end";
    case "INVALID_OPENING_QUOTE":
      return "a quote appears in the middle of an unquoted field";
    case "CSV_MAX_RECORD_SIZE":
      return "the record is too long (is this really a CSV file?)";
    case undefined:
      return "malformed record";
    default:
      return (err?.message ?? "malformed record").replace(/ at line \d+/, "");
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
