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
import { HEADER_LINE, csvLine, parseTimestamp, rowLine } from "../log/check.js";
import type { LogRow } from "../log/check.js";
import { readLog } from "./log-reader.js";
import { fileStep, progressFor } from "./progress.js";
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

The inputs are held in memory while they are merged: their size plus about 30
bytes per row (a million rows, 61 MB of logs: about 100 MB).
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

    const rows = new MergeRows(await totalSize(inputs));
    const files: Buffer[] = [];
    const unsortable: Buffer[] = [];
    let fatal = false;
    let invalid = 0;
    const style = styleFor({ ...ctx, stdout: ctx.stderr });
    const progress = progressFor(ctx, "merge");
    for (const [index, { name, path: file }] of inputs.entries()) {
      let shown = 0;
      const result = await readLog(
        file,
        {
          row(row, _line, span) {
            rows.push(row.micros, index, span.start, span.end, span.canonical ? undefined : Buffer.from(rowLine(row)));
          },
          invalid(record) {
            if (!keepInvalid) return;
            const text = record.raw === undefined ? Buffer.from(csvLine(record.fields)) : Buffer.concat([record.raw, NEWLINE]);
            const micros = record.fields[0] === undefined ? undefined : parseTimestamp(record.fields[0]);
            if (typeof micros === "number") rows.push(micros, index, 0, 0, text);
            else unsortable.push(text);
          },
          problem(p) {
            if (p.severity !== "error") return;
            progress.clear();
            if (maxProblems === 0 || shown < maxProblems) ctx.stderr.write(`${PROGRAM}: ${formatProblem(name, p, style)}`);
            shown++;
          },
        },
        { whole: true, progress: (done, size) => progress.update(fileStep("reading", name, index, inputs.length), done, size) },
      );
      files.push(result.bytes ?? Buffer.alloc(0));
      if (result.fatal !== undefined) fatal = true;
      invalid += result.invalidRows;
      if (maxProblems !== 0 && shown > maxProblems) warn(ctx, `${printable(name)}: ${formatInt(shown - maxProblems)} more problems not shown`);
    }
    if (fatal) {
      progress.clear();
      warn(ctx, `nothing written${outPath === undefined ? "" : ` to ${printable(out)}`}: fix or leave out the files above`);
      return EXIT.problems;
    }

    progress.update("sorting", 0, 1);
    const merged = rows.merge(files, unsortable);
    const produce = async (sink: (chunk: Uint8Array) => Promise<void>): Promise<void> => {
      await sink(Buffer.from(`${HEADER_LINE}\n`));
      await merged.write(sink, (done) => progress.update("writing", done, merged.rows));
    };
    if (outPath === undefined) await produce((chunk) => writeChunk(ctx.stdout, chunk));
    else await writeAtomically(outPath, produce);
    progress.clear();
    const { rows: written, duplicates } = merged;
    const parts = [
      duplicates > 0 ? `${formatInt(duplicates)} duplicate row${duplicates === 1 ? "" : "s"} dropped` : "",
      invalid > 0 ? `${formatInt(invalid)} invalid row${invalid === 1 ? "" : "s"} ${keepInvalid ? "kept" : "left out"}` : "",
    ].filter((p) => p !== "");
    warn(
      ctx,
      `${formatInt(written)} row${written === 1 ? "" : "s"} from ${inputs.length} file${inputs.length === 1 ? "" : "s"} written to ${outPath === undefined ? "stdout" : printable(out)}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`,
    );
    return invalid > 0 ? EXIT.problems : EXIT.ok;
  },
};

const NEWLINE = Buffer.from("\n");

/** Writes a chunk and resolves once the stream is done with it (so that its buffer can be reused). */
function writeChunk(stream: NodeJS.WritableStream, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()));
  });
}

async function totalSize(inputs: readonly { path: string }[]): Promise<number> {
  let size = 0;
  for (const input of inputs) size += (await stat(input.path).catch(() => undefined))?.size ?? 0;
  return size;
}

/**
 * The rows of every input, in input order, as numbers: their time and where their line is in the
 * input's bytes (about 30 bytes a row with its place in the output order, where a row object and its
 * strings took 350). A row that is
 * not written as it appears in its file (counts with leading zeros, a kept invalid row) has its
 * line as its own bytes.
 */
class MergeRows {
  #micros: Float64Array;
  #starts: Float64Array;
  #lengths: Uint32Array;
  #files: Uint32Array;
  #n = 0;
  readonly #texts = new Map<number, Buffer>();

  constructor(bytes: number) {
    // A usage log row is 60 to 80 bytes: room for all of them, most of the time, without growing.
    const capacity = Math.max(1024, Math.ceil(bytes / 56));
    this.#micros = new Float64Array(capacity);
    this.#starts = new Float64Array(capacity);
    this.#lengths = new Uint32Array(capacity);
    this.#files = new Uint32Array(capacity);
  }

  push(micros: number, file: number, start: number, end: number, text: Buffer | undefined): void {
    if (this.#n === this.#micros.length) this.#grow();
    const i = this.#n++;
    this.#micros[i] = micros;
    this.#files[i] = file;
    this.#starts[i] = start;
    this.#lengths[i] = end - start;
    if (text !== undefined) this.#texts.set(i, text);
  }

  #grow(): void {
    const grow = <T extends Float64Array | Uint32Array>(a: T): T => {
      const bigger = new (a.constructor as new (n: number) => T)(a.length * 2);
      bigger.set(a);
      return bigger;
    };
    this.#micros = grow(this.#micros);
    this.#starts = grow(this.#starts);
    this.#lengths = grow(this.#lengths);
    this.#files = grow(this.#files);
  }

  #line(i: number, bytes: (i: number) => Buffer): Buffer {
    return this.#texts.get(i) ?? Buffer.concat([bytes(i), NEWLINE]);
  }

  /** The rows in time order without exact duplicates, then `unsortable`; writes them on demand. */
  merge(files: readonly Buffer[], unsortable: readonly Buffer[]): MergedRows {
    const bytes = (i: number): Buffer => {
      const start = this.#starts[i] as number;
      return (files[this.#files[i] as number] as Buffer).subarray(start, start + (this.#lengths[i] as number));
    };
    // A row's line is its text (with the line break), or its bytes in its file (without).
    const lines: LineIdentity = {
      same: (i, j) => {
        const a = this.#texts.get(i);
        const b = this.#texts.get(j);
        if (a === undefined && b === undefined) {
          const si = this.#starts[i] as number;
          const sj = this.#starts[j] as number;
          const li = this.#lengths[i] as number;
          if (li !== this.#lengths[j]) return false;
          const fi = files[this.#files[i] as number] as Buffer;
          return fi.compare(files[this.#files[j] as number] as Buffer, sj, sj + li, si, si + li) === 0;
        }
        return this.#line(i, bytes).equals(this.#line(j, bytes));
      },
      key: (i) => this.#line(i, bytes).toString("latin1"),
    };
    const { order, length, duplicates } = mergeOrder(this.#micros, this.#n, lines);
    const tail = uniqueLines(unsortable.map((b) => b.toString("latin1")));
    const rowsOut = length + tail.lines.length;
    const self = this;
    return {
      rows: rowsOut,
      duplicates: duplicates + tail.duplicates,
      async write(sink, progress) {
        let out = Buffer.allocUnsafe(OUT_CHUNK);
        let o = 0;
        // The sink resolves once a chunk is written, so one buffer serves for all of them.
        const room = async (needed: number): Promise<void> => {
          if (o + needed <= out.length) return;
          await sink(out.subarray(0, o));
          if (needed > out.length) out = Buffer.allocUnsafe(needed);
          o = 0;
          progress(k);
        };
        let k = 0;
        for (; k < length; k++) {
          const i = order[k] as number;
          const text = self.#texts.get(i);
          if (text !== undefined) {
            await room(text.length);
            o += text.copy(out, o);
            continue;
          }
          const start = self.#starts[i] as number;
          const len = self.#lengths[i] as number;
          if (o + len + 1 > out.length) await room(len + 1);
          (files[self.#files[i] as number] as Buffer).copy(out, o, start, start + len);
          o += len;
          out[o++] = 0x0a;
        }
        for (const text of tail.lines) {
          await room(text.length);
          o += out.write(text, o, "latin1");
        }
        if (o > 0) await sink(out.subarray(0, o));
      },
    };
  }
}

const OUT_CHUNK = 1 << 20;

interface MergedRows {
  /** Rows that will be written, and exact duplicates left out. */
  readonly rows: number;
  readonly duplicates: number;
  /**
   * Writes the rows to `sink` in chunks of about 1 MiB, reusing one buffer: `sink` must be done
   * with a chunk when its promise resolves. `progress` gets the rows written so far.
   */
  write(sink: (chunk: Uint8Array) => Promise<void>, progress: (rows: number) => void): Promise<void>;
}

/** How merge tells exact duplicates: two rows' lines compared, or a line as a key. */
export interface LineIdentity {
  same(i: number, j: number): boolean;
  key(i: number): string;
}

/**
 * The order to write rows 0..n-1 in: by `micros`, stable (rows with the same time keep their input
 * order), exact duplicates (same `line`) left out. Logs are sorted by time already, or nearly (a
 * file per team member, processes appending side by side): the input is cut where the time goes
 * back, and these ascending runs are merged k ways. Sorted input is one run and costs one pass.
 */
export function mergeOrder(micros: ArrayLike<number>, n: number, lines: LineIdentity): { order: Uint32Array; length: number; duplicates: number } {
  const order = new Uint32Array(n);
  const runStarts: number[] = [];
  for (let i = 0; i < n; i++) if (i === 0 || (micros[i] as number) < (micros[i - 1] as number)) runStarts.push(i);
  const runs = runStarts.length;
  const cursor = new Float64Array(runs);
  const end = new Float64Array(runs);
  for (let r = 0; r < runs; r++) {
    cursor[r] = runStarts[r] as number;
    end[r] = r + 1 < runs ? (runStarts[r + 1] as number) : n;
  }
  // A binary heap of runs, by the time of their next row, then its input position.
  const heap = new Int32Array(runs);
  let size = runs;
  for (let r = 0; r < runs; r++) heap[r] = r;
  const before = (a: number, b: number): boolean => {
    const x = micros[cursor[a] as number] as number;
    const y = micros[cursor[b] as number] as number;
    return x < y || (x === y && (cursor[a] as number) < (cursor[b] as number));
  };
  const siftDown = (at: number): void => {
    const r = heap[at] as number;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= size) break;
      if (child + 1 < size && before(heap[child + 1] as number, heap[child] as number)) child++;
      if (!before(heap[child] as number, r)) break;
      heap[at] = heap[child] as number;
      at = child;
    }
    heap[at] = r;
  };
  for (let at = (size >> 1) - 1; at >= 0; at--) siftDown(at);

  let length = 0;
  let duplicates = 0;
  let groupMicros = Number.NaN;
  // The rows kept so far at this instant; a Set of their lines once there are many.
  const group: number[] = [];
  let groupLines: Set<string> | undefined;
  while (size > 0) {
    const r = heap[0] as number;
    const i = cursor[r] as number;
    cursor[r] = i + 1;
    if (i + 1 === end[r]) heap[0] = heap[--size] as number;
    if (size > 0) siftDown(0);
    // Exact duplicates share their time, so only rows of one instant are compared.
    const t = micros[i] as number;
    if (t !== groupMicros) {
      groupMicros = t;
      group.length = 0;
      groupLines = undefined;
    } else if (groupLines !== undefined) {
      const text = lines.key(i);
      if (groupLines.has(text)) {
        duplicates++;
        continue;
      }
      groupLines.add(text);
    } else if (group.some((j) => lines.same(i, j))) {
      duplicates++;
      continue;
    } else if (group.length >= 16) {
      groupLines = new Set([...group, i].map((j) => lines.key(j)));
    }
    group.push(i);
    order[length++] = i;
  }
  return { order, length, duplicates };
}

/** `lines` without repeats, in their order. */
function uniqueLines(lines: readonly string[]): { lines: string[]; duplicates: number } {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of lines) if (!seen.has(line)) (seen.add(line), out.push(line));
  return { lines: out, duplicates: lines.length - out.length };
}

/** A valid row as a CSV line, as it was written (counts in plain decimal). */
/** The CSV line of an entry. */
function entryLine(e: Entry): string {
  return e.text ?? (e.row === undefined ? "" : rowLine(e.row));
}

/**
 * Sorts by time (stable: rows with the same timestamp keep their input order) and drops exact
 * duplicates; `unsortable` (invalid rows without a readable time) go last. Pure; the entries'
 * form of what merge does with the rows of its files.
 */
export function mergeEntries(entries: Entry[], unsortable: readonly string[] = []): { chunks: Iterable<string>; count(): { rows: number; duplicates: number } } {
  const lines = entries.map(entryLine);
  const { order, length, duplicates } = mergeOrder(
    entries.map((e) => e.micros),
    entries.length,
    { same: (i, j) => lines[i] === lines[j], key: (i) => lines[i] as string },
  );
  const tail = uniqueLines(unsortable);
  let done = false;
  function* chunks(): Generator<string> {
    let batch: string[] = [];
    for (let k = 0; k < length; k++) {
      batch.push(lines[order[k] as number] as string);
      if (batch.length >= 4096) {
        yield batch.join("");
        batch = [];
      }
    }
    batch.push(...tail.lines);
    if (batch.length > 0) yield batch.join("");
    done = true;
  }
  return {
    chunks: chunks(),
    count() {
      if (!done) throw new Error("mergeEntries: count() before all chunks were read");
      return { rows: length + tail.lines.length, duplicates: duplicates + tail.duplicates };
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
async function writeAtomically(target: string, produce: (sink: (chunk: Uint8Array) => Promise<void>) => Promise<void>): Promise<void> {
  const existing = await stat(target).catch(() => undefined);
  if (existing !== undefined && !existing.isFile()) {
    const direct = createWriteStream(target, { flags: "w" });
    await produce((chunk) => writeChunk(direct, chunk));
    direct.end();
    await finished(direct);
    return;
  }
  const real = existing === undefined ? target : await realpath(target);
  const temp = path.join(path.dirname(real), `.${path.basename(real)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const stream = createWriteStream(temp, { flags: "wx" });
  try {
    await produce((chunk) => writeChunk(stream, chunk));
    stream.end();
    await finished(stream);
    await rename(temp, real);
  } catch (err) {
    stream.destroy();
    await rm(temp, { force: true });
    throw err;
  }
}
