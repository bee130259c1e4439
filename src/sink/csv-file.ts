import type Fs from "node:fs";
import path from "node:path";
import { checkHeader, checkRow } from "../log/check.js";
import { HEADER_LINE, formatRows } from "../log/format.js";
import type { UsageEvent } from "../record/usage-event.js";
import type { UsageSink } from "./sink.js";

export interface CsvLogOptions {
  warn(message: string): void;
  /** Called after rows reach the file, for MISTRAL_USAGE_VERBOSE. */
  onWritten?(rows: readonly UsageEvent[], logPath: string): void;
}

// Not `import fs from "node:fs"`: an ES module import of node:fs builds its namespace, whose
// ReadStream getter loads node:stream, 3 ms added to the start-up of every process that preloads us.
const fs: typeof Fs = process.getBuiltinModule("node:fs");

const HEADER_BYTES = Buffer.from(`${HEADER_LINE}\n`);
/** Header lines among rows (never the first line: the file starts with a row when this is used). */
const HEADER_AMONG_ROWS = new RegExp(`^${HEADER_LINE}\r?\n`, "gm");
const NO_THROW = { throwIfNoEntry: false } as const;
/** A lock file older than this was left by a process that died while it held it. */
const STALE_LOCK_MS = 10_000;
/** At exit, how long to wait for a lock another process holds before repairing without it. */
const EXIT_LOCK_WAIT_MS = 20;
/** Rows that wait for another process's repair (its lock) are retried this often. */
const RETRY_MS = 20;
/** A log without its header is given one back up to this size; a larger one is left alone. */
const MAX_REPAIR_BYTES = 16 * 1024 * 1024;
/** After a header repair, rows other processes still append to the replaced file are copied over this long. */
const ORPHAN_WATCH_MS = 1000;
const ORPHAN_POLL_MS = 50;
/** Writes to a pipe up to PIPE_BUF bytes are never interleaved with other writers' (POSIX: at least 512). */
const PIPE_ATOMIC_BYTES = 512;
/** How long a write may wait for a full pipe's reader: the app's event loop must not stall. */
const STREAM_WAIT_MS = 5;

/** The open log: a regular file of ours, or a character device, FIFO or our own redirected stdout/stderr. */
type Target =
  | { readonly kind: "file"; readonly fd: number; readonly dev: number; readonly ino: number; /** No smaller than the file, as far as we know. */ knownSize: number }
  | { readonly kind: "stream"; readonly fd: number; /** False for fd 1 and 2, which are the app's. */ readonly owned: boolean };

/** The file a header repair replaced, which writers that stat-ed it just before may still append to. */
interface Orphan {
  readonly fd: number;
  offset: number;
  readonly until: number;
}

/** Another process holds the lock a repair needs: the rows wait, and the event loop does not. */
const BUSY = Symbol("busy");
/** The file changed while it was being opened or repaired: look at the path again. */
const AGAIN = Symbol("again");

/**
 * The CSV usage log, shared by every process and thread that writes to the same path.
 *
 * Rows are appended with synchronous writes to a file opened with O_APPEND, one write per batch of
 * whole rows, so rows from several processes never interleave and a row that was recorded is on
 * disk before any `process.exit()` can run (an asynchronous write still in flight at exit would be
 * lost or, if retried, written twice). Rows recorded in the same tick are batched into one write,
 * made on the next tick; rows still pending when the process exits are written by the exit handler.
 *
 * One `stat` of the path per batch follows the file: deleted, moved or replaced, the next batch
 * goes to the file now at the path; shrunk (truncated, or rotated by copytruncate), it is inspected
 * again and gets its header back. A file that is not a usage log is refused until it changes.
 *
 * The header is written exactly once even when many processes create the file at the same moment:
 * a new file appears atomically with its header already in it (written to a temporary file, then
 * hard-linked into place, which fails if another process got there first). Repairs of an existing
 * file (a header into an empty one, a missing final newline, a header lost to a truncation) happen
 * under a lock file, which is never waited for: rows wait for another process's repair instead.
 */
export class CsvLog implements UsageSink {
  readonly path: string;
  readonly #options: CsvLogOptions;
  #pending: UsageEvent[] = [];
  #flushScheduled = false;
  #target: Target | undefined;
  /** A file that is not a usage log, as it was when refused: rows are dropped until it changes. */
  #refused: Identity | undefined;
  #orphan: Orphan | undefined;
  /** Whole rows copied from an orphaned file, written ahead of the next batch. */
  #carried = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** A character device or FIFO gets one header per process at most, before its first row. */
  #streamHeaderDone = false;
  readonly #warned = new Set<string>();

  constructor(logPath: string, options: CsvLogOptions) {
    this.path = logPath;
    this.#options = options;
  }

  append(event: UsageEvent): void {
    this.#pending.push(event);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flushNow);
    }
  }

  readonly #flushNow = (): void => {
    try {
      this.flush();
    } catch (error) {
      this.#internalError(error);
    }
  };

  /** Writes every pending row now, unless another process's repair holds the file (then soon). Never throws. */
  flush(): void {
    this.#flushScheduled = false;
    this.#writePending(false);
  }

  close(): void {
    this.#flushScheduled = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writePending(true);
    this.#restoreLostHeader();
    this.#closeOrphan();
    this.#closeTarget();
  }

  /**
   * On the way out, one more look at the first byte: a batch of another process that landed just
   * after a truncation (copytruncate) leaves the file without its header until some writer's next
   * batch notices the shrink; if this process was the last writer, there is none.
   */
  #restoreLostHeader(): void {
    const target = this.#target;
    if (target?.kind !== "file") return;
    const first = Buffer.alloc(1);
    try {
      if (fs.readSync(target.fd, first, 0, 1, 0) === 0 || first[0] === HEADER_BYTES[0] || first[0] === 0xef) return;
      this.#closeTarget();
      this.#open(true);
      this.#writePending(true); // the rows the repair copied from the old file's tail
    } catch (error) {
      this.#warnUnwritable(error);
    }
  }

  #writePending(exiting: boolean): void {
    if (this.#orphan !== undefined) this.#collectOrphanRows(exiting);
    if (this.#pending.length === 0 && this.#carried === "") return;
    const rows = this.#pending;
    this.#pending = [];
    const target = this.#ready(exiting);
    if (target === BUSY) {
      this.#pending = rows;
      this.#wakeIn(RETRY_MS);
      return;
    }
    // Unwritable or refused: #ready has said so once; repeating it per batch would be noise.
    if (target === undefined) {
      this.#carried = "";
      return;
    }
    const text = this.#carried + formatRows(rows);
    this.#carried = "";
    try {
      if (target.kind === "file") target.knownSize += writeAll(target.fd, text);
      else writeStream(target.fd, text);
    } catch (error) {
      this.#closeTarget();
      this.#warn(`cannot write to ${this.path} (${describe(error)}); usage rows were not written`);
      return;
    }
    if (rows.length > 0) this.#options.onWritten?.(rows, this.path);
  }

  /** Where the next batch goes, after one stat of the path; undefined when it cannot go anywhere. */
  #ready(exiting: boolean): Target | undefined | typeof BUSY {
    const target = this.#target;
    if (target !== undefined) {
      if (target.kind === "stream") return target;
      const stat = fs.statSync(this.path, NO_THROW);
      // Ours only grows: a smaller file was truncated, maybe with a row of someone's already in it.
      if (stat !== undefined && isSameFile(stat, target) && stat.size >= target.knownSize) {
        target.knownSize = stat.size;
        return target;
      }
      this.#closeTarget();
    } else if (this.#refused !== undefined) {
      const stat = fs.statSync(this.path, NO_THROW);
      if (stat !== undefined && isUnchanged(stat, this.#refused)) return undefined;
      this.#refused = undefined;
    }
    try {
      return this.#open(exiting);
    } catch (error) {
      this.#closeTarget();
      this.#warnUnwritable(error);
      return undefined;
    }
  }

  #open(exiting: boolean): Target | undefined | typeof BUSY {
    for (let attempt = 0; attempt < 5; attempt++) {
      const stat = fs.statSync(this.path, NO_THROW);
      if (stat === undefined) {
        this.#create();
        continue;
      }
      if (stat.isDirectory()) throw new Error("it is a directory");
      const stdio = ownStdio(stat);
      if (stdio !== undefined) return this.#streamTo(stdio, false);
      if (!stat.isFile()) return this.#openStream(stat);
      let fd: number;
      try {
        fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_APPEND);
      } catch (error) {
        if (errorCode(error) === "ENOENT") continue;
        throw error;
      }
      const result = this.#adopt(fd, exiting);
      if (result !== AGAIN) return result;
    }
    throw new Error("the file kept changing while it was opened");
  }

  /** Makes the open file our target, repaired if needed; closes it unless it becomes the target (or an orphan). */
  #adopt(fd: number, exiting: boolean): Target | undefined | typeof BUSY | typeof AGAIN {
    let state = inspect(fd);
    let keepFd = false;
    try {
      if (state.kind === "empty" || state.kind === "rows" || (state.kind === "ours" && state.needsNewline)) {
        // Repairs happen under a lock, re-checking first, so that two processes cannot both write the
        // header or both add the newline.
        const lock = acquireLock(`${this.path}.lock`, exiting);
        if (lock === BUSY) return BUSY;
        try {
          state = inspect(fd);
          if (state.kind === "empty") writeAll(fd, HEADER_BYTES);
          else if (state.kind === "ours" && state.needsNewline) writeAll(fd, "\n");
          else if (state.kind === "rows" && state.size <= MAX_REPAIR_BYTES) {
            if (lock !== undefined) {
              keepFd = this.#restoreHeader(fd, state);
              return AGAIN;
            }
            // No lock: two copy-and-rename repairs at once could log rows twice. At exit (another
            // process holds the lock, so it is repairing this very file), the rows go into the file as
            // it is, and that process copies them over.
            if (!exiting) throw new Error("it has lost its header, and no lock file can be made next to it to put the header back");
            keepFd = true;
            this.#target = fileTarget(fd, state);
            return this.#target;
          }
        } finally {
          releaseLock(`${this.path}.lock`, lock);
        }
        state = inspect(fd);
        // A row of a writer that had not seen the truncation landed first (maybe just before the
        // header written here): the next round puts the header back at the top.
        if (state.kind === "rows" && state.size <= MAX_REPAIR_BYTES) return AGAIN;
      }
      if (state.kind === "foreign" || state.kind === "rows") {
        this.#refused = state;
        this.#warn(
          `${this.path}: ${state.difference}. It is not a usage log, so it is left untouched, and usage is not logged ` +
            `until it is moved away or emptied (or MISTRAL_USAGE_LOG names another file).`,
        );
        return undefined;
      }
      if (state.kind === "empty" || state.kind === "changed") return AGAIN;
      keepFd = true;
      this.#target = fileTarget(fd, state);
      return this.#target;
    } finally {
      if (!keepFd) closeQuietly(fd);
    }
  }

  /**
   * A log whose first line is a usage row lost its header to a truncation (copytruncate rotation
   * racing a write). It cannot be prepended in place while other processes append, so a copy with
   * the header replaces it, and the rows others still append to the old file in the next moment are
   * copied after (#collectOrphanRows). Returns true when `fd` became the orphan.
   */
  #restoreHeader(fd: number, state: { size: number; dev: number; ino: number }): boolean {
    if (!isSameFile(fs.statSync(this.path, NO_THROW), state)) return false;
    const content = Buffer.alloc(state.size);
    const read = readFully(fd, content, 0);
    const whole = read === 0 ? 0 : content.lastIndexOf(0x0a, read - 1) + 1;
    // A header written just after a racing row sits on line 2 or later: it goes, the one at the top stays.
    const rows = content.toString("utf8", 0, whole).replace(HEADER_AMONG_ROWS, "");
    const temporary = temporaryPath(this.path);
    try {
      fs.writeFileSync(temporary, HEADER_LINE + "\n" + rows, { flag: "wx" });
      // Truncated meanwhile (copytruncate has just archived these rows, and other rows may already
      // have refilled it), or replaced: the copy would log them twice. Checked at the last moment,
      // by content; the window left is a few microseconds.
      const again = Buffer.alloc(whole);
      if (readFully(fd, again, 0) < whole || !again.equals(content.subarray(0, whole)) || !isSameFile(fs.statSync(this.path, NO_THROW), state)) {
        fs.rmSync(temporary, { force: true });
        return false;
      }
      fs.renameSync(temporary, this.path);
    } catch (error) {
      fs.rmSync(temporary, { force: true });
      throw error;
    }
    this.#collectOrphanRows(true); // an earlier orphan's last rows, before it is let go
    this.#orphan = { fd, offset: whole, until: Date.now() + ORPHAN_WATCH_MS };
    this.#wakeIn(ORPHAN_POLL_MS);
    return true;
  }

  /**
   * Moves the whole rows appended to the orphaned file since it was copied into #carried. The last
   * time (at exit, or once the watch is over), a last line without a newline goes too, with one:
   * by then no write can still be under way, so it is not half a row.
   */
  #collectOrphanRows(exiting: boolean): void {
    const orphan = this.#orphan;
    if (orphan === undefined) return;
    const last = exiting || Date.now() >= orphan.until;
    try {
      const size = Math.min(fs.fstatSync(orphan.fd).size, orphan.offset + MAX_REPAIR_BYTES);
      if (size > orphan.offset) {
        const bytes = Buffer.alloc(size - orphan.offset);
        const read = readFully(orphan.fd, bytes, orphan.offset);
        const whole = last || read === 0 ? read : bytes.lastIndexOf(0x0a, read - 1) + 1;
        this.#carried += bytes.toString("utf8", 0, whole).replace(HEADER_AMONG_ROWS, "");
        if (whole > 0 && bytes[whole - 1] !== 0x0a) this.#carried += "\n";
        orphan.offset += whole;
      }
    } catch {
      this.#closeOrphan();
      return;
    }
    if (last) this.#closeOrphan();
    else this.#wakeIn(ORPHAN_POLL_MS);
  }

  #create(): void {
    // A symbolic link to a file that does not exist yet: create that file, as `>>` would.
    const file = danglingLinkTarget(this.path) ?? this.path;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    createWithHeader(file);
  }

  #openStream(stat: Fs.Stats): Target {
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO that nobody reads fails at once (ENXIO) instead of blocking the app until a
      // reader comes, and a full pipe fails a write (EAGAIN) instead of stalling the event loop.
      fd = fs.openSync(this.path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_NONBLOCK);
    } catch (error) {
      if (errorCode(error) !== "ENXIO") throw error;
      throw new Error(stat.isFIFO() ? "it is a named pipe (FIFO) and no process is reading it" : "it is a socket, which cannot be written as a file");
    }
    return this.#streamTo(fd, true);
  }

  #streamTo(fd: number, owned: boolean): Target {
    const target: Target = { kind: "stream", fd, owned };
    this.#target = target;
    if (!this.#streamHeaderDone) {
      this.#streamHeaderDone = true;
      // One header per process at most (a worker has its own CsvLog, and writes rows only), so that
      // `MISTRAL_USAGE_LOG=/dev/stdout node app.js > usage.csv` gives a usage log, and a pipe one header.
      if (process.getBuiltinModule("node:worker_threads").isMainThread) this.#carried = HEADER_BYTES.toString() + this.#carried;
    }
    return target;
  }

  /** Runs #writePending later, once: a retry after a lock, or the watch of an orphaned file. */
  #wakeIn(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      try {
        this.#writePending(false);
      } catch (error) {
        this.#internalError(error);
      }
    }, ms);
    // Never keeps the app alive: the exit handler writes what is left.
    this.#timer.unref();
  }

  #warnUnwritable(error: unknown): void {
    this.#warn(`cannot write the usage log ${this.path} (${describe(error)}); usage is not being logged: set MISTRAL_USAGE_LOG to a writable file`);
  }

  #internalError(error: unknown): void {
    this.#warn(`internal error, please report it: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }

  /** One warning per problem, whoever the warn callback is: a batch that meets the same problem says nothing new. */
  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#options.warn(message);
  }

  #closeOrphan(): void {
    if (this.#orphan !== undefined) closeQuietly(this.#orphan.fd);
    this.#orphan = undefined;
  }

  #closeTarget(): void {
    const target = this.#target;
    this.#target = undefined;
    if (target !== undefined && (target.kind === "file" || target.owned)) closeQuietly(target.fd);
  }
}

interface Identity {
  readonly size: number;
  readonly dev: number;
  readonly ino: number;
  readonly mtimeMs: number;
}

type FileState =
  | ({ kind: "empty" } & Identity)
  | ({ kind: "changed" } & Identity)
  | ({ kind: "ours"; needsNewline: boolean } & Identity)
  /** No header, but the first line is a usage row: a log that lost its header. */
  | ({ kind: "rows"; difference: string } & Identity)
  | ({ kind: "foreign"; /** What is wrong with the first line, as `mistral-usage validate` says it. */ difference: string } & Identity);

/** Reads the first line (and last byte) of an open log; "changed" when it shrank while being read. */
function inspect(fd: number): FileState {
  const { size, dev, ino, mtimeMs } = fs.fstatSync(fd);
  const identity = { size, dev, ino, mtimeMs };
  if (size === 0) return { kind: "empty", ...identity };
  const head = Buffer.alloc(Math.min(size, 4096));
  const read = readFully(fd, head, 0);
  // Truncated between the fstat and the read (copytruncate): what was read says nothing of the file.
  if (read < head.length) return { kind: "changed", ...identity };
  let text = head.toString("utf8");
  const newline = text.indexOf("\n");
  if (newline !== -1) text = text.slice(0, newline);
  else if (size > read) return { kind: "foreign", difference: "the first line is longer than 4096 bytes", ...identity };
  const firstLine = text.replace(/^\uFEFF/, "").replace(/\r$/, "");
  if (firstLine !== HEADER_LINE) {
    const fields = splitCsvLine(firstLine);
    const difference = checkHeader(fields ?? [firstLine]) ?? "the header is quoted";
    if (fields !== undefined && checkRow(fields).ok) return { kind: "rows", difference, ...identity };
    return { kind: "foreign", difference, ...identity };
  }
  const last = Buffer.alloc(1);
  if (fs.readSync(fd, last, 0, 1, size - 1) === 0) return { kind: "changed", ...identity };
  return { kind: "ours", needsNewline: last[0] !== 0x0a, ...identity };
}

/** The fields of one CSV line (RFC 4180 quoting), or undefined when its quotes are broken. */
function splitCsvLine(line: string): string[] | undefined {
  if (!line.includes('"')) return line.split(",");
  const fields: string[] = [];
  let at = 0;
  for (;;) {
    if (line[at] !== '"') {
      const comma = line.indexOf(",", at);
      fields.push(line.slice(at, comma === -1 ? line.length : comma));
      if (comma === -1) return fields;
      at = comma + 1;
      continue;
    }
    let value = "";
    for (at++; ; ) {
      const quote = line.indexOf('"', at);
      if (quote === -1) return undefined;
      value += line.slice(at, quote);
      at = quote + 1;
      if (line[at] !== '"') break;
      value += '"';
      at++;
    }
    fields.push(value);
    if (at === line.length) return fields;
    if (line[at] !== ",") return undefined;
    at++;
  }
}

function fileTarget(fd: number, file: Identity): Target {
  return { kind: "file", fd, dev: file.dev, ino: file.ino, knownSize: file.size };
}

function isSameFile(stat: Fs.Stats | undefined, file: { dev: number; ino: number }): boolean {
  return stat !== undefined && stat.ino === file.ino && stat.dev === file.dev;
}

function isUnchanged(stat: Fs.Stats, seen: Identity): boolean {
  return stat.ino === seen.ino && stat.dev === seen.dev && stat.size === seen.size && stat.mtimeMs === seen.mtimeMs;
}

/**
 * 1 or 2 when the log is this process's own stdout or stderr (`/dev/stdout`, or the file it is
 * redirected to), whatever it is: a pipe, a socket (which cannot be opened by name), a terminal or
 * a file. Rows are written through the app's own descriptor, as pino's sonic-boom does: appending
 * through another would overwrite what the app writes at its own offset to a file redirected with
 * `>` (no O_APPEND).
 */
function ownStdio(stat: Fs.Stats): number | undefined {
  for (const fd of [1, 2]) {
    try {
      const own = fs.fstatSync(fd);
      if (own.ino === stat.ino && own.dev === stat.dev && own.rdev === stat.rdev) return fd;
    } catch {
      // Closed: not ours to write to.
    }
  }
  return undefined;
}

/** Where a chain of symbolic links ends, when it ends at nothing; undefined when `file` is not such a link. */
function danglingLinkTarget(file: string): string | undefined {
  let current = file;
  for (let hops = 0; hops < 40; hops++) {
    const link = fs.lstatSync(current, NO_THROW);
    if (link === undefined) return current === file ? undefined : current;
    if (!link.isSymbolicLink()) return undefined;
    current = path.resolve(path.dirname(current), fs.readlinkSync(current));
  }
  throw new Error("too many levels of symbolic links");
}

/** Creates `file` with the header in it, atomically, unless another process created it first. */
function createWithHeader(file: string): void {
  const temporary = temporaryPath(file);
  fs.writeFileSync(temporary, HEADER_BYTES, { flag: "wx" });
  try {
    fs.linkSync(temporary, file);
  } catch (error) {
    const code = errorCode(error);
    if (code === "EEXIST") return; // another process created it first: use theirs
    if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EXDEV") {
      // A filesystem without hard links: create exclusively; the empty-file repair covers the rest.
      try {
        fs.writeFileSync(file, "", { flag: "wx" });
      } catch (inner) {
        if (errorCode(inner) !== "EEXIST") throw inner;
      }
      return;
    }
    throw error;
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}

function temporaryPath(file: string): string {
  // node:worker_threads is loaded here, not at start-up: it brings node:stream, 3 ms of every start.
  const { threadId } = process.getBuiltinModule("node:worker_threads");
  return `${file}.${process.pid}.${threadId}.${Date.now()}.tmp`;
}

/** Writes all of `data`; returns its length in bytes. */
function writeAll(fd: number, data: string | Buffer): number {
  if (typeof data === "string") {
    // Written as a string (no Buffer per batch); a short write, which a regular file hardly ever
    // makes, continues from a Buffer.
    const written = fs.writeSync(fd, data);
    const length = Buffer.byteLength(data);
    if (written === length) return length;
    const buffer = Buffer.from(data);
    for (let offset = written; offset < length; ) offset += fs.writeSync(fd, buffer, offset, length - offset);
    return length;
  }
  for (let offset = 0; offset < data.length; ) offset += fs.writeSync(fd, data, offset, data.length - offset);
  return data.length;
}

/**
 * Writes rows to a pipe, FIFO or character device opened O_NONBLOCK: whole rows, PIPE_ATOMIC_BYTES
 * at most per write, so that other writers of the same pipe cannot cut one; a full pipe is waited
 * for a few milliseconds, then the rest is given up (an error).
 */
function writeStream(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let offset = 0;
  let waitingSince: number | undefined;
  while (offset < bytes.length) {
    let end = bytes.length;
    if (end - offset > PIPE_ATOMIC_BYTES) {
      const lastNewline = bytes.lastIndexOf(0x0a, offset + PIPE_ATOMIC_BYTES - 1);
      end = lastNewline >= offset ? lastNewline + 1 : offset + PIPE_ATOMIC_BYTES;
    }
    try {
      offset += fs.writeSync(fd, bytes, offset, end - offset);
      waitingSince = undefined;
    } catch (error) {
      if (errorCode(error) !== "EAGAIN") throw error;
      const now = Date.now();
      waitingSince ??= now;
      if (now - waitingSince >= STREAM_WAIT_MS) throw new Error("it is full: its reader is not reading");
      Atomics.wait(sleeper, 0, 0, 1);
    }
  }
}

function readFully(fd: number, into: Buffer, position: number): number {
  let read = 0;
  while (read < into.length) {
    const n = fs.readSync(fd, into, read, into.length - read, position + read);
    if (n === 0) break;
    read += n;
  }
  return read;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Takes the lock file of a repair. Never waits while the app runs: BUSY when another process holds
 * it (the rows are retried a moment later). At exit, waits a few milliseconds, then repairs without
 * it (the re-check inside still applies). A lock older than STALE_LOCK_MS is broken. undefined: no
 * lock (it cannot be created here, say in a read-only folder): repair without one.
 */
function acquireLock(lockPath: string, exiting: boolean): number | undefined | typeof BUSY {
  const deadline = Date.now() + (exiting ? EXIT_LOCK_WAIT_MS : 0);
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      return fs.openSync(lockPath, "wx");
    } catch (error) {
      if (errorCode(error) !== "EEXIST") return undefined;
    }
    const stat = fs.statSync(lockPath, NO_THROW);
    if (stat === undefined) continue; // released in the meantime
    if (Date.now() - stat.mtimeMs > STALE_LOCK_MS) {
      fs.rmSync(lockPath, { force: true });
      continue;
    }
    if (Date.now() >= deadline) return exiting ? undefined : BUSY;
    Atomics.wait(sleeper, 0, 0, 1);
  }
  return exiting ? undefined : BUSY;
}

function releaseLock(lockPath: string, lock: number | undefined): void {
  if (lock === undefined) return;
  closeQuietly(lock);
  fs.rmSync(lockPath, { force: true });
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null ? ((error as { code?: string }).code ?? undefined) : undefined;
}

/**
 * An error as a warning says it. Node's file errors end in the path (`EACCES: permission denied,
 * open '/logs/usage.csv.123.0.1764.tmp'`); it is left out, because our temporary files have unique
 * names and one problem must be one warning, not one per batch. The warning names the log instead.
 */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.message.replace(/, [a-z_]+ '[^]*$/, "");
}
