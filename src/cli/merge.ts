/** `mistral-usage merge -o OUT FILE...`: the team's logs as one file, sorted by time. */
import { createWriteStream } from "node:fs";
import { realpath, rename, rm, stat } from "node:fs/promises";
import type { Stats } from "node:fs";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { finished } from "node:stream/promises";
import { DEFAULT_MAX_PROBLEMS, EXIT, EXIT_CODES_HELP, PROGRAM, UsageError, parseCountOption, parseOptions, resolveFiles, styleFor, warn, write } from "./common.js";
import type { Command } from "./common.js";
import { formatInt, printable } from "./format.js";
import { HEADER_LINE, csvLine, parseTimestamp } from "../log/check.js";
import type { LogRow } from "../log/check.js";
import { readLog } from "./log-reader.js";
import { formatProblem } from "./validate.js";

const HELP = `Usage: ${PROGRAM} merge -o OUT [options] FILE...

Combines usage logs (one per team member, say) into the single log file the
organisers ask for: one header, then the rows of every FILE sorted by time.
  - exact duplicate rows (a file given twice, a log copied into another) are
    dropped and counted
  - invalid rows are reported on stderr and left out (see --keep-invalid)
  - a FILE that is not a usage log, or not valid CSV (a stray quote), stops
    the merge: nothing is written
  - an input is never overwritten; OUT is written to a temporary file first
    and renamed into place, so it is complete or untouched
Rows keep their values as written (timestamps are not rewritten); line
endings become LF.

Options:
  -o, --output OUT  the merged file; "-" writes to stdout (required)
  --keep-invalid    keep invalid rows too: sorted with the others when their
                    timestamp is readable, else at the end
  --max-problems N  print at most N problems per file (default ${DEFAULT_MAX_PROBLEMS}, 0 = all)
  -h, --help        show this help

Rows are sorted in memory: about 350 bytes per row (a million rows: ~350 MB).
Exit status 1 with invalid rows means that OUT was still written.

${EXIT_CODES_HELP}
`;

/** A row to write: a valid row (serialized when written) or the CSV line of a kept invalid row. */
export interface Entry {
  readonly micros: number;
  readonly row?: LogRow;
  readonly text?: string;
}

export const mergeCommand: Command = {
  name: "merge",
  summary: "combine logs into one, sorted, without duplicates",
  help: HELP,
  async run(args, ctx) {
    const { values, positionals } = parseOptions("merge", args, {
      output: { type: "string", short: "o" },
      "keep-invalid": { type: "boolean", default: false },
      "max-problems": { type: "string" },
    });
    const out = values.output as string | undefined;
    if (out === undefined || out === "") throw new UsageError("merge needs -o OUT (or -o - for stdout)", "merge");
    if (positionals.length === 0) throw new UsageError("merge needs at least one FILE to read", "merge");
    const keepInvalid = values["keep-invalid"] === true;
    const maxProblems = parseCountOption("merge", "max-problems", values["max-problems"] as string | undefined, DEFAULT_MAX_PROBLEMS);
    const inputs = resolveFiles(ctx, positionals);
    const outPath = out === "-" ? undefined : path.resolve(ctx.cwd, out);
    if (outPath !== undefined) await checkOutput(out, outPath, inputs);

    const sorted: Entry[] = [];
    const unsortable: string[] = [];
    let fatal = false;
    let invalid = 0;
    const style = styleFor({ ...ctx, stdout: ctx.stderr });
    for (const { name, path: file } of inputs) {
      let shown = 0;
      const result = await readLog(
        file,
        {
          row(row) {
            sorted.push({ micros: row.micros, row });
          },
          invalid(record) {
            if (!keepInvalid) return;
            const text = csvLine(record.fields);
            const micros = record.fields[0] === undefined ? undefined : parseTimestamp(record.fields[0]);
            if (typeof micros === "number") sorted.push({ micros, text });
            else unsortable.push(text);
          },
          problem(p) {
            if (p.severity !== "error") return;
            if (maxProblems === 0 || shown < maxProblems) ctx.stderr.write(`${PROGRAM}: ${formatProblem(name, p, style)}`);
            shown++;
          },
        },
      );
      if (result.fatal !== undefined) fatal = true;
      invalid += result.invalidRows;
      if (maxProblems !== 0 && shown > maxProblems) warn(ctx, `${printable(name)}: ${formatInt(shown - maxProblems)} more problems not shown`);
    }
    if (fatal) {
      warn(ctx, `nothing written${outPath === undefined ? "" : ` to ${printable(out)}`}: fix or leave out the files above`);
      return EXIT.problems;
    }

    const merged = mergeEntries(sorted, unsortable);
    const text = (function* (): Generator<string> {
      yield `${HEADER_LINE}\n`;
      yield* merged.chunks;
    })();
    if (outPath === undefined) {
      for (const chunk of text) await write(ctx.stdout, chunk);
    } else {
      await writeAtomically(outPath, text);
    }
    const { rows, duplicates } = merged.count();
    const parts = [
      duplicates > 0 ? `${formatInt(duplicates)} duplicate row${duplicates === 1 ? "" : "s"} dropped` : "",
      invalid > 0 ? `${formatInt(invalid)} invalid row${invalid === 1 ? "" : "s"} ${keepInvalid ? "kept" : "left out"}` : "",
    ].filter((p) => p !== "");
    warn(
      ctx,
      `${formatInt(rows)} row${rows === 1 ? "" : "s"} from ${inputs.length} file${inputs.length === 1 ? "" : "s"} written to ${outPath === undefined ? "stdout" : printable(out)}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`,
    );
    return invalid > 0 ? EXIT.problems : EXIT.ok;
  },
};

/** A valid row as a CSV line, as it was written (counts in plain decimal). */
function rowLine(row: LogRow): string {
  return csvLine([row.timestamp, row.model, String(row.promptTokens), String(row.completionTokens), String(row.totalTokens)]);
}

/** The CSV line of an entry. */
function entryLine(e: Entry): string {
  return e.text ?? (e.row === undefined ? "" : rowLine(e.row));
}

/**
 * Sorts by time (stable: rows with the same timestamp keep their input order) and drops exact
 * duplicates; `unsortable` (invalid rows without a readable time) go last. Pure. Returns the lines
 * lazily, in chunks, so that a million rows are never all held as text at once.
 */
export function mergeEntries(entries: Entry[], unsortable: readonly string[] = []): { chunks: Iterable<string>; count(): { rows: number; duplicates: number } } {
  entries.sort((a, b) => a.micros - b.micros);
  let rows = 0;
  let duplicates = 0;
  let done = false;
  function* lines(): Generator<string> {
    // Exact duplicates share their timestamp, so they are neighbours after sorting: only the rows
    // of one instant need comparing, never the whole file.
    for (let i = 0; i < entries.length; ) {
      const first = entries[i] as Entry;
      let j = i + 1;
      while (j < entries.length && (entries[j] as Entry).micros === first.micros) j++;
      if (j === i + 1) {
        rows++;
        yield entryLine(first);
      } else {
        const seen = new Set<string>();
        for (let k = i; k < j; k++) {
          const line = entryLine(entries[k] as Entry);
          if (seen.has(line)) duplicates++;
          else {
            seen.add(line);
            rows++;
            yield line;
          }
        }
      }
      i = j;
    }
    const tail = new Set<string>();
    for (const line of unsortable) {
      if (tail.has(line)) duplicates++;
      else {
        tail.add(line);
        rows++;
        yield line;
      }
    }
    done = true;
  }
  function* chunks(): Generator<string> {
    let batch: string[] = [];
    for (const line of lines()) {
      batch.push(line);
      if (batch.length >= 4096) {
        yield batch.join("");
        batch = [];
      }
    }
    if (batch.length > 0) yield batch.join("");
  }
  return {
    chunks: chunks(),
    count() {
      if (!done) throw new Error("mergeEntries: count() before all chunks were read");
      return { rows, duplicates };
    },
  };
}

/** Refuses an OUT that is one of the inputs (by name, symlink or hard link) or a directory. */
async function checkOutput(out: string, outPath: string, inputs: readonly { name: string; path: string }[]): Promise<void> {
  const outStat = await stat(outPath).catch(() => undefined);
  if (outStat?.isDirectory() === true) throw new UsageError(`-o ${out} is a directory`, "merge");
  const parent = await stat(path.dirname(outPath)).catch(() => undefined);
  if (parent === undefined || !parent.isDirectory()) throw new UsageError(`-o ${out}: the folder ${path.dirname(outPath)} does not exist`, "merge");
  const outReal = await realpath(outPath).catch(() => outPath);
  for (const input of inputs) {
    const inStat: Stats | undefined = await stat(input.path).catch(() => undefined);
    const inReal = await realpath(input.path).catch(() => input.path);
    const same = inReal === outReal || (outStat !== undefined && inStat !== undefined && inStat.dev === outStat.dev && inStat.ino === outStat.ino);
    if (same) throw new UsageError(`-o ${out} is also an input (${input.name}); merge never overwrites an input: choose another OUT`, "merge");
  }
}

/**
 * Writes to a temporary file beside `target`, then renames it into place. An existing target that
 * is not a regular file (/dev/null, a FIFO) is written to directly; a symlink is followed.
 */
async function writeAtomically(target: string, chunks: Iterable<string>): Promise<void> {
  const existing = await stat(target).catch(() => undefined);
  if (existing !== undefined && !existing.isFile()) {
    const direct = createWriteStream(target, { flags: "w" });
    for (const chunk of chunks) await write(direct, chunk);
    direct.end();
    await finished(direct);
    return;
  }
  const real = existing === undefined ? target : await realpath(target);
  const temp = path.join(path.dirname(real), `.${path.basename(real)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const stream = createWriteStream(temp, { flags: "wx" });
  try {
    for (const chunk of chunks) await write(stream, chunk);
    stream.end();
    await finished(stream);
    await rename(temp, real);
  } catch (err) {
    stream.destroy();
    await rm(temp, { force: true });
    throw err;
  }
}
