import type Fs from "node:fs";
import path from "node:path";
import { checkHeader } from "../log/check.js";
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
const LOCK_WAIT_MS = 2000;
const STALE_LOCK_MS = 10_000;

/**
 * The CSV usage log, shared by every process and thread that writes to the same path.
 *
 * Rows are appended with synchronous writes to a file opened with O_APPEND, one write per batch of
 * whole rows, so rows from several processes never interleave and a row that was recorded is on
 * disk before any `process.exit()` can run (an asynchronous write still in flight at exit would be
 * lost or, if retried, written twice). Rows recorded in the same tick are batched into one write,
 * made on the next tick; rows still pending when the process exits are written by the exit handler.
 *
 * The header is written exactly once even when many processes create the file at the same moment:
 * a new file appears atomically with its header already in it (written to a temporary file, then
 * hard-linked into place, which fails if another process got there first).
 */
export class CsvLog implements UsageSink {
  readonly path: string;
  readonly #options: CsvLogOptions;
  #pending: UsageEvent[] = [];
  #flushScheduled = false;
  #fd: number | undefined;
  #inode: { dev: number; ino: number } | undefined;
  /** Set when the file must not be written (foreign header); rows are dropped after one warning. */
  #refused = false;

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

  readonly #flushNow = (): void => this.flush();

  /** Writes every pending row now. Never throws. */
  flush(): void {
    this.#flushScheduled = false;
    if (this.#pending.length === 0) return;
    const rows = this.#pending;
    this.#pending = [];
    // Unwritable or refused: #openChecked has said so once; repeating it per batch would be noise.
    const fd = this.#refused ? undefined : this.#openChecked();
    if (fd === undefined) return;
    try {
      writeAll(fd, formatRows(rows));
    } catch (error) {
      this.#close();
      this.#options.warn(`cannot write to ${this.path} (${describe(error)}); ${rows.length} usage row(s) not written`);
      return;
    }
    this.#options.onWritten?.(rows, this.path);
  }

  close(): void {
    this.flush();
    this.#close();
  }

  /** The open descriptor, re-opened if the file was deleted, replaced or emptied since. */
  #openChecked(): number | undefined {
    if (this.#fd !== undefined) {
      const stat = fs.statSync(this.path, { throwIfNoEntry: false });
      if (stat !== undefined && stat.size > 0 && stat.ino === this.#inode?.ino && stat.dev === this.#inode.dev) {
        return this.#fd;
      }
      this.#close();
    }
    try {
      return this.#open();
    } catch (error) {
      this.#close();
      this.#options.warn(`cannot write the usage log ${this.path} (${describe(error)}); usage is not being logged: set MISTRAL_USAGE_LOG to a writable file`);
      return undefined;
    }
  }

  #open(): number | undefined {
    fs.mkdirSync(path.dirname(this.path), { recursive: true });
    for (let attempt = 0; attempt < 5; attempt++) {
      let fd: number;
      try {
        fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_APPEND);
      } catch (error) {
        if (errorCode(error) !== "ENOENT") throw error;
        this.#createWithHeader();
        continue;
      }
      this.#fd = fd;
      let state = inspect(fd);
      if (state.kind === "empty" || (state.kind === "ours" && state.needsNewline)) {
        // Empty file, or rows that do not end in a newline: repair under a lock, re-checking first,
        // so two processes cannot both write the header or both add the newline.
        withLock(`${this.path}.lock`, () => {
          state = inspect(fd);
          if (state.kind === "empty") writeAll(fd, HEADER_BYTES);
          else if (state.kind === "ours" && state.needsNewline) writeAll(fd, "\n");
        });
        state = inspect(fd);
      }
      if (state.kind === "foreign") {
        this.#refused = true;
        this.#close();
        this.#options.warn(
          `${this.path}: ${state.difference}. It is not a usage log, so it is left untouched and usage is not logged: ` +
            `move it away or set MISTRAL_USAGE_LOG to another file.`,
        );
        return undefined;
      }
      if (state.kind === "ours") {
        this.#inode = state.inode;
        return fd;
      }
      this.#close();
    }
    throw new Error("the file kept changing while it was opened");
  }

  #createWithHeader(): void {
    // node:worker_threads is loaded here, not at start-up: it brings node:stream, 3 ms of every start.
    const { threadId } = process.getBuiltinModule("node:worker_threads");
    const temporary = `${this.path}.${process.pid}.${threadId}.${Date.now()}.tmp`;
    fs.writeFileSync(temporary, HEADER_BYTES, { flag: "wx" });
    try {
      fs.linkSync(temporary, this.path);
    } catch (error) {
      const code = errorCode(error);
      if (code === "EEXIST") return; // another process created it first: use theirs
      if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EXDEV") {
        // A filesystem without hard links: create exclusively; the empty-file repair covers the rest.
        try {
          fs.writeFileSync(this.path, "", { flag: "wx" });
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

  #close(): void {
    if (this.#fd !== undefined) {
      try {
        fs.closeSync(this.#fd);
      } catch {
        // Already closed: nothing to release.
      }
    }
    this.#fd = undefined;
    this.#inode = undefined;
  }
}

type FileState =
  | { kind: "empty" }
  | { kind: "ours"; needsNewline: boolean; inode: { dev: number; ino: number } }
  | { kind: "foreign"; /** What is wrong with the first line, as `mistral-usage validate` says it. */ difference: string };

/** Reads the first line (and last byte) of an open log. */
function inspect(fd: number): FileState {
  const { size, dev, ino } = fs.fstatSync(fd);
  if (size === 0) return { kind: "empty" };
  const head = Buffer.alloc(Math.min(size, 4096));
  const read = fs.readSync(fd, head, 0, head.length, 0);
  let text = head.subarray(0, read).toString("utf8");
  const newline = text.indexOf("\n");
  if (newline !== -1) text = text.slice(0, newline);
  else if (size > read) return { kind: "foreign", difference: "the first line is longer than 4096 bytes" };
  const firstLine = text.replace(/^\uFEFF/, "").replace(/\r$/, "");
  if (firstLine !== HEADER_LINE) return { kind: "foreign", difference: checkHeader(firstLine.split(",")) ?? "the header is quoted" };
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  return { kind: "ours", needsNewline: last[0] !== 0x0a, inode: { dev, ino } };
}

function writeAll(fd: number, data: string | Buffer): void {
  if (typeof data === "string") {
    // Written as a string (no Buffer per batch); a short write, which a regular file hardly ever
    // makes, continues from a Buffer.
    const written = fs.writeSync(fd, data);
    const length = Buffer.byteLength(data);
    if (written === length) return;
    const buffer = Buffer.from(data);
    for (let offset = written; offset < length; ) offset += fs.writeSync(fd, buffer, offset, length - offset);
    return;
  }
  for (let offset = 0; offset < data.length; ) offset += fs.writeSync(fd, data, offset, data.length - offset);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `action` holding an exclusive lock file. Only the rare repairs (header into an empty file,
 * missing final newline) take it. A lock left by a crashed process is broken once it is stale.
 */
function withLock(lockPath: string, action: () => void): void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = fs.openSync(lockPath, "wx");
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
      const stat = fs.statSync(lockPath, { throwIfNoEntry: false });
      if (stat !== undefined && Date.now() - stat.mtimeMs > STALE_LOCK_MS) fs.rmSync(lockPath, { force: true });
      else if (Date.now() > deadline) break; // give up waiting; the re-check inside still applies
      else Atomics.wait(sleeper, 0, 0, 2);
    }
  }
  try {
    action();
  } finally {
    if (fd !== undefined) {
      fs.closeSync(fd);
      fs.rmSync(lockPath, { force: true });
    }
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null ? ((error as { code?: string }).code ?? undefined) : undefined;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
