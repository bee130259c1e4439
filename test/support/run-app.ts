/**
 * Helpers for integration tests that run real apps as child processes, with or
 * without the `--import` preload, and read the CSV they leave behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstat, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startMockMistral } from './mock-mistral.js';
import type { MockMistral, ServedResponse, StartOptions } from './mock-mistral.js';

/** Absolute path of the repository root (this file lives in <root>/test/support/). */
export const repoRoot: string = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** The built preload entry; it exists after `npm run build`. */
export const registerPath: string = join(repoRoot, 'register.js');

/** A fresh directory under os.tmpdir(). Callers remove it (`rm(dir, {recursive: true, force: true})`). */
export async function tempDir(prefix = 'mistral-usage-log-'): Promise<string> {
  // realpath: on some systems tmpdir is a symlink, and apps report real paths.
  return realpath(await mkdtemp(join(tmpdir(), prefix)));
}

/** A temporary folder, removed when the test ends. */
export async function tempDirFor(t: TestContext, prefix?: string): Promise<string> {
  const dir = await tempDir(prefix);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A mock Mistral server, closed when the test ends. */
export async function mockFor(t: TestContext, options: StartOptions = {}): Promise<MockMistral> {
  const mock = await startMockMistral(options);
  t.after(() => mock.close());
  return mock;
}

/** How every line the preload prints on stderr begins. */
export const OUR_PREFIX = 'mistral-usage-log: ';

/** The lines of stderr that the preload printed. */
export function ourLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith(OUR_PREFIX));
}

/** A log row's model and counts (everything after the timestamp) for a call the mock served. */
export function rowTail(s: ServedResponse): string {
  return `${s.model},${s.promptTokens},${s.completionTokens},${s.totalTokens}`;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True when the child was killed because it outlived timeoutMs. */
  timedOut: boolean;
}

export interface RunNodeOptions {
  cwd: string;
  /** Applied over the cleaned environment; `undefined` deletes a variable. */
  env?: Record<string, string | undefined>;
  /** Node binary (default: the one running the tests). */
  node?: string;
  timeoutMs?: number;
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /** Run the child as this user and group (the runner must be root). */
  uid?: number;
  gid?: number;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * The child's environment: the runner's, minus anything that would change how the
 * child loads code or logs usage (NODE_OPTIONS may carry the tsx loader or a preload,
 * MISTRAL_USAGE_* would redirect the CSV, NODE_TEST_CONTEXT makes node:test in the
 * child report to our runner), then the caller's overrides.
 */
export function childEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key === 'NODE_OPTIONS' || key === 'NODE_TEST_CONTEXT' || key.startsWith('MISTRAL_USAGE_')) delete env[key];
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Run `node ...args` and collect its output. Never rejects on a non-zero exit: check `code`. */
export function runNode(args: string[], opts: RunNodeOptions): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolvePromise, reject) => {
    const ids = { ...(opts.uid === undefined ? {} : { uid: opts.uid }), ...(opts.gid === undefined ? {} : { gid: opts.gid }) };
    const child = spawn(opts.node ?? process.execPath, args, { cwd: opts.cwd, env: childEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'], ...ids });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    // EPIPE when the child exits without reading stdin is not the test's concern.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      let err = Buffer.concat(stderr).toString('utf8');
      if (timedOut) err += `\n[run-app] killed with SIGKILL after ${timeoutMs} ms timeout: node ${args.join(' ')}\n`;
      resolvePromise({ code, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: err, timedOut });
    });
  });
}

export interface RunAppOptions {
  cwd: string;
  /** Written to <cwd>/app.mjs and run. */
  source?: string;
  /** An existing file to run (relative to cwd or absolute); ignored when `source` is given. */
  file?: string;
  /** Run with `--import <registerPath>`. */
  preload: boolean;
  env?: Record<string, string | undefined>;
  node?: string;
  /** Extra node flags, placed before the script (after the preload). */
  nodeArgs?: string[];
  /** Arguments for the script. */
  args?: string[];
  timeoutMs?: number;
  input?: string;
  /** Run the child as this user and group (the runner must be root). */
  uid?: number;
  gid?: number;
}

/**
 * ESM ignores NODE_PATH, so a temp-dir app can only resolve bare imports such as
 * `openai` through a node_modules next to it: link the repo's.
 */
export async function linkNodeModules(cwd: string): Promise<void> {
  const link = join(cwd, 'node_modules');
  try {
    await lstat(link);
    return;
  } catch {
    // Not there yet.
  }
  try {
    await symlink(join(repoRoot, 'node_modules'), link, 'dir');
  } catch (err) {
    // Another runApp in the same cwd may have won the race.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

export async function runApp(opts: RunAppOptions): Promise<RunResult> {
  let script: string;
  if (opts.source !== undefined) {
    script = join(opts.cwd, 'app.mjs');
    await writeFile(script, opts.source);
  } else if (opts.file !== undefined) {
    script = isAbsolute(opts.file) ? opts.file : join(opts.cwd, opts.file);
  } else {
    throw new Error('runApp needs either source or file');
  }
  await linkNodeModules(opts.cwd);
  // A file URL: --import takes a module specifier, and this form is valid on every OS.
  const preload = opts.preload ? ['--import', pathToFileURL(registerPath).href] : [];
  const runOpts: RunNodeOptions = { cwd: opts.cwd };
  if (opts.env !== undefined) runOpts.env = opts.env;
  if (opts.node !== undefined) runOpts.node = opts.node;
  if (opts.timeoutMs !== undefined) runOpts.timeoutMs = opts.timeoutMs;
  if (opts.input !== undefined) runOpts.input = opts.input;
  if (opts.uid !== undefined) runOpts.uid = opts.uid;
  if (opts.gid !== undefined) runOpts.gid = opts.gid;
  return runNode([...preload, ...(opts.nodeArgs ?? []), script, ...(opts.args ?? [])], runOpts);
}

export interface CsvContent {
  /** The first line as written (BOM and all, so a test can notice one). */
  header: string;
  /** Records after the header; quoted fields unquoted, blank lines skipped. */
  rows: string[][];
  raw: string;
}

/** Split CSV text into records per RFC 4180 (quotes, doubled quotes, CRLF or LF). Never throws. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  const endRecord = (): void => {
    record.push(field);
    // A blank line is not a record.
    if (!(record.length === 1 && record[0] === '')) records.push(record);
    record = [];
    field = '';
  };
  while (i < text.length) {
    const ch = text[i] as string;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (ch === '"') quoted = false;
      else field += ch;
      i++;
      continue;
    }
    if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      record.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      endRecord();
      if (ch === '\r' && text[i + 1] === '\n') i++;
    } else field += ch;
    i++;
  }
  if (field !== '' || record.length > 0) endRecord();
  return records;
}

/** Read a CSV file. A missing file rejects (ENOENT) so "no CSV written" is an explicit check. */
export async function readCsv(path: string): Promise<CsvContent> {
  const raw = await readFile(path, 'utf8');
  const firstBreak = raw.search(/\r?\n/);
  const header = firstBreak === -1 ? raw : raw.slice(0, firstBreak);
  const rows = parseCsv(raw).slice(1);
  return { header, rows, raw };
}

/** The mandatory header, and the timestamp form every row must have. */
export const LOG_HEADER = 'TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens';
export const LOG_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/;

/**
 * A usage log's data rows, after asserting the format: the header exactly once, as the first line;
 * five fields per row; the timestamp form; whole-number counts.
 */
export async function readLogRows(path: string): Promise<string[][]> {
  const csv = await readCsv(path);
  assert.equal(csv.header, LOG_HEADER, 'the log starts with the header');
  assert.equal(csv.raw.split('\n').filter((line) => line === LOG_HEADER).length, 1, `exactly one header line:\n${csv.raw}`);
  for (const row of csv.rows) {
    assert.equal(row.length, 5, `five fields: ${row.join(',')}`);
    assert.match(row[0] ?? '', LOG_TIMESTAMP, `timestamp of ${row.join(',')}`);
    for (const count of row.slice(2)) assert.match(count, /^\d+$/, `counts are whole numbers: ${row.join(',')}`);
  }
  return csv.rows;
}
