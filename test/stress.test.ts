/**
 * Load cases for the CSV usage log, end to end: many concurrent calls, many processes and
 * worker threads writing one file at the same moment. Real apps run as child processes under the
 * `--import` preload against the loopback mock; the test reads the real CSV.
 *
 * No timing assertions: throughput is only printed (t.diagnostic).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startMockMistral } from './support/mock-mistral.js';
import type { MockMistral, ServedResponse } from './support/mock-mistral.js';
import { LOG_HEADER, mockFor, ourLines, rowTail, runApp, tempDirFor } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

const HEADER = LOG_HEADER;
/** A whole row for the plain model names used here (no quoting needed). */
const ROW = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00,[A-Za-z0-9._-]+,\d+,\d+,\d+$/;
const RUN_TIMEOUT_MS = 60_000;

function sorted(values: Iterable<string>): string[] {
  return [...values].sort();
}

/**
 * The file is one header, then `expected` intact rows (each line a whole row, LF-terminated),
 * and the rows' model+counts are the same multiset as what the mock served.
 */
async function assertLog(log: string, served: readonly ServedResponse[], expected: number): Promise<void> {
  const raw = await readFile(log, 'utf8');
  assert.ok(raw.startsWith(`${HEADER}\n`), `header first: ${JSON.stringify(raw.slice(0, 120))}`);
  assert.ok(raw.endsWith('\n'), 'ends with LF');
  const lines = raw.slice(HEADER.length + 1, -1).split('\n');
  const broken = lines.filter((line) => !ROW.test(line));
  assert.deepEqual(broken, [], `every line after the header is an intact row (${broken.length} are not)`);
  assert.equal(lines.length, expected, `${expected} rows`);
  assert.equal(served.length, expected, `${expected} usage-bearing responses served`);
  const rows = lines.map((line) => line.slice(line.indexOf(',') + 1));
  assert.deepEqual(sorted(rows), sorted(served.map(rowTail)), 'rows and served responses are the same multiset');
  assert.equal(new Set(rows).size, expected, 'every row is unique (the mock numbers each response)');
}

/** Only the log itself next to it: no temporary header file, no lock left behind. */
async function assertNoLitter(dir: string, expected: readonly string[]): Promise<void> {
  assert.deepEqual((await readdir(dir)).sort(), [...expected].sort());
}

function assertRunOk(result: RunResult, stdout: string): void {
  assert.equal(result.timedOut, false, result.stderr);
  assert.deepEqual(ourLines(result.stderr), [], `no lines from us on stderr:\n${result.stderr}`);
  assert.equal(result.stderr, '');
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, stdout);
}

/** App code shared by every process and worker (plain fetch). String.raw: no `${` in here. */
const LIB = String.raw`
import fs from 'node:fs';
import path from 'node:path';
const BASE = process.env.MOCK_URL;
const MESSAGES = [{ role: 'user', content: 'hi' }];
async function post(p, body) {
  const res = await fetch(BASE + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(p + ' -> ' + res.status + ' ' + (await res.text()));
  return res;
}
/** Call i of a mix: JSON, SSE, gzip SSE, gzip JSON. Returns the reply text. */
async function mixedCall(i, tag) {
  const kind = i % 4;
  const prefix = kind >= 2 ? '/mock/gzip' : '';
  const stream = kind === 1 || kind === 2;
  const model = tag + '-' + ['json', 'sse', 'sse-gzip', 'json-gzip'][kind];
  const res = await post(prefix + '/v1/chat/completions', { model, messages: MESSAGES, stream });
  if (!stream) return (await res.json()).choices[0].message.content;
  let out = '';
  for (const line of (await res.text()).split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    out += JSON.parse(line.slice(6)).choices[0].delta.content ?? '';
  }
  return out;
}
/** n calls, at most 'concurrency' at a time. */
async function pool(n, concurrency, tag) {
  let next = 0;
  let chars = 0;
  const lane = async () => {
    while (next < n) chars += (await mixedCall(next++, tag)).length;
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return chars;
}
/** Announce readiness, then wait for the go file, so that every process starts at once. */
async function barrier() {
  const dir = process.env.BARRIER_DIR;
  if (!dir) return;
  fs.writeFileSync(path.join(dir, 'ready-' + process.env.APP_ID), '');
  while (!fs.existsSync(path.join(dir, 'go'))) await new Promise((resolve) => setTimeout(resolve, 1));
}
`;

/** Worker thread: `calls` mixed calls, `concurrency` at a time, then reports the characters read. */
const WORKER = LIB + String.raw`
import { parentPort, workerData } from 'node:worker_threads';
const chars = await pool(workerData.calls, workerData.concurrency, workerData.tag);
parentPort.postMessage(chars);
`;

/** Main thread with workers: starts them, optionally calls from the main thread too. */
const WITH_WORKERS = LIB + String.raw`
import { Worker } from 'node:worker_threads';
const WORKERS = Number(process.env.WORKERS);
const CALLS = Number(process.env.CALLS);
const MAIN_CALLS = Number(process.env.MAIN_CALLS ?? 0);
const tag = 'p' + (process.env.APP_ID ?? '0');
await barrier();
const results = await Promise.all([
  ...Array.from({ length: WORKERS }, (_, w) => new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: { calls: CALLS, concurrency: 5, tag: tag + 'w' + w } });
    let chars;
    worker.on('message', (m) => (chars = m));
    worker.on('error', reject);
    worker.on('exit', (code) => (code === 0 && chars !== undefined ? resolve(chars) : reject(new Error('worker exited with ' + code))));
  })),
  pool(MAIN_CALLS, 4, tag + 'main'),
]);
console.log('ok', results.length);
`;

const SINGLE = LIB + String.raw`
await barrier();
const chars = await pool(Number(process.env.CALLS), Number(process.env.CONCURRENCY), 'p' + (process.env.APP_ID ?? '0'));
console.log('ok', chars > 0);
`;

interface AppSpec {
  file: string;
  env: Record<string, string>;
}

/**
 * Starts every app at once on one log: each waits at a barrier until all have loaded (the
 * preload included), then all are released together.
 */
async function runTogether(dir: string, mock: MockMistral, log: string, apps: readonly AppSpec[]): Promise<RunResult[]> {
  const barrierDir = join(dir, `barrier-${Date.now()}-${Math.random().toString(36).slice(2)}`);
  await mkdir(barrierDir);
  const runs = apps.map((app, i) =>
    runApp({
      cwd: dir,
      file: app.file,
      preload: true,
      timeoutMs: RUN_TIMEOUT_MS,
      env: { MOCK_URL: mock.url, MISTRAL_USAGE_HOSTS: mock.hostPort, MISTRAL_USAGE_LOG: log, BARRIER_DIR: barrierDir, APP_ID: String(i), ...app.env },
    }),
  );
  let finished = false;
  const release = (async (): Promise<boolean> => {
    while ((await readdir(barrierDir)).length < apps.length) {
      // An app that crashed never reaches the barrier: stop waiting once every app has ended.
      if (finished) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await writeFile(join(barrierDir, 'go'), '');
    return true;
  })();
  const results = await Promise.all(runs);
  finished = true;
  if (!(await release)) assert.fail(`not every app reached the barrier:\n${results.map((r) => r.stderr).join('\n')}`);
  return results;
}

// ---------------------------------------------------------------------------
// A. One process, 500 concurrent calls
// ---------------------------------------------------------------------------

describe('stress', () => {
  it('A. 500 concurrent calls in one process (JSON, SSE, gzip SSE, gzip JSON): 500 rows, one header', async (t) => {
    const dir = await tempDirFor(t, 'mul-stress-');
    const mock = await mockFor(t);
    const logDir = join(dir, 'logs');
    const log = join(logDir, 'usage.csv');
    await writeFile(join(dir, 'app.mjs'), SINGLE);
    const started = performance.now();
    const [result] = await runTogether(dir, mock, log, [{ file: 'app.mjs', env: { CALLS: '500', CONCURRENCY: '500' } }]);
    const seconds = (performance.now() - started) / 1000;
    assertRunOk(result!, 'ok true\n');
    const served = await mock.waitForServed(500);
    await assertLog(log, served, 500);
    await assertNoLitter(logDir, ['usage.csv']);
    t.diagnostic(`500 calls in one process: ${seconds.toFixed(2)} s, ${(500 / seconds).toFixed(0)} rows/s (process start included)`);
  });

  // -------------------------------------------------------------------------
  // B. 6 processes x 80 calls on one new file, 3 rounds
  // -------------------------------------------------------------------------

  it('B. 6 processes x 80 calls (8 concurrent each) released together on one new file, 3 rounds', async (t) => {
    const dir = await tempDirFor(t, 'mul-stress-');
    await writeFile(join(dir, 'app.mjs'), SINGLE);
    for (let round = 1; round <= 3; round++) {
      const mock = await startMockMistral();
      try {
        // Neither the file nor its folder exists: the processes race to create both.
        const logDir = join(dir, `round-${round}`, 'logs');
        const log = join(logDir, 'usage.csv');
        await assert.rejects(stat(join(dir, `round-${round}`)), { code: 'ENOENT' });
        const apps = Array.from({ length: 6 }, () => ({ file: 'app.mjs', env: { CALLS: '80', CONCURRENCY: '8' } }));
        const started = performance.now();
        const results = await runTogether(dir, mock, log, apps);
        const seconds = (performance.now() - started) / 1000;
        for (const result of results) assertRunOk(result, 'ok true\n');
        const served = await mock.waitForServed(480);
        await assertLog(log, served, 480);
        const raw = await readFile(log, 'utf8');
        assert.equal(raw.split('\n').filter((line) => line === HEADER).length, 1, 'exactly one header line');
        assert.equal(raw.split('\n').filter((line) => line.startsWith('TimestampUTC')).length, 1);
        await assertNoLitter(logDir, ['usage.csv']);
        t.diagnostic(`round ${round}: 480 calls from 6 processes in ${seconds.toFixed(2)} s, ${(480 / seconds).toFixed(0)} rows/s (process start included)`);
      } finally {
        await mock.close();
      }
    }
  });

  it('B2. 6 processes x 40 calls released together on an existing file that needs a repair (empty; header without newline)', async (t) => {
    const dir = await tempDirFor(t, 'mul-stress-');
    await writeFile(join(dir, 'app.mjs'), SINGLE);
    for (const [name, content] of [['empty', ''], ['header-no-newline', HEADER]] as const) {
      const mock = await startMockMistral();
      try {
        const logDir = join(dir, name);
        const log = join(logDir, 'usage.csv');
        await mkdir(logDir);
        await writeFile(log, content);
        const apps = Array.from({ length: 6 }, () => ({ file: 'app.mjs', env: { CALLS: '40', CONCURRENCY: '8' } }));
        const started = performance.now();
        const results = await runTogether(dir, mock, log, apps);
        const seconds = (performance.now() - started) / 1000;
        for (const result of results) assertRunOk(result, 'ok true\n');
        const served = await mock.waitForServed(240);
        // One header, its newline added once, no blank line: the repairs happened exactly once.
        await assertLog(log, served, 240);
        await assertNoLitter(logDir, ['usage.csv']);
        t.diagnostic(`${name}: 240 calls from 6 processes in ${seconds.toFixed(2)} s`);
      } finally {
        await mock.close();
      }
    }
  });

  // -------------------------------------------------------------------------
  // C. Worker threads in one process
  // -------------------------------------------------------------------------

  it('C. a pool of 4 worker threads x 25 calls: 100 rows', async (t) => {
    const dir = await tempDirFor(t, 'mul-stress-');
    const mock = await mockFor(t);
    const logDir = join(dir, 'logs');
    const log = join(logDir, 'usage.csv');
    await writeFile(join(dir, 'app.mjs'), WITH_WORKERS);
    await writeFile(join(dir, 'worker.mjs'), WORKER);
    const started = performance.now();
    const [result] = await runTogether(dir, mock, log, [{ file: 'app.mjs', env: { WORKERS: '4', CALLS: '25', MAIN_CALLS: '0' } }]);
    const seconds = (performance.now() - started) / 1000;
    assertRunOk(result!, 'ok 5\n');
    const served = await mock.waitForServed(100);
    await assertLog(log, served, 100);
    const workersSeen = new Set(served.map((s) => s.model.replace(/-.*$/, '')));
    assert.deepEqual(sorted(workersSeen), ['p0w0', 'p0w1', 'p0w2', 'p0w3']);
    await assertNoLitter(logDir, ['usage.csv']);
    t.diagnostic(`100 calls from 4 worker threads: ${seconds.toFixed(2)} s, ${(100 / seconds).toFixed(0)} rows/s (process start included)`);
  });

  // -------------------------------------------------------------------------
  // D. Processes with worker threads, all on one file
  // -------------------------------------------------------------------------

  it('D. 4 processes x (2 worker threads x 30 calls + 10 main-thread calls) on one new file: 280 rows, none interleaved', async (t) => {
    const dir = await tempDirFor(t, 'mul-stress-');
    const mock = await mockFor(t);
    const logDir = join(dir, 'shared');
    const log = join(logDir, 'usage.csv');
    await writeFile(join(dir, 'app.mjs'), WITH_WORKERS);
    await writeFile(join(dir, 'worker.mjs'), WORKER);
    const apps = Array.from({ length: 4 }, () => ({ file: 'app.mjs', env: { WORKERS: '2', CALLS: '30', MAIN_CALLS: '10' } }));
    const started = performance.now();
    const results = await runTogether(dir, mock, log, apps);
    const seconds = (performance.now() - started) / 1000;
    for (const result of results) assertRunOk(result, 'ok 3\n');
    const served = await mock.waitForServed(280);
    await assertLog(log, served, 280);
    const writers = new Set(served.map((s) => s.model.replace(/-[a-z-]+$/, '')));
    assert.equal(writers.size, 12, `4 processes x 3 threads wrote: ${sorted(writers).join(' ')}`);
    await assertNoLitter(logDir, ['usage.csv']);
    t.diagnostic(`280 calls from 4 processes x 3 threads: ${seconds.toFixed(2)} s, ${(280 / seconds).toFixed(0)} rows/s (process start included)`);
  });
});

// ---------------------------------------------------------------------------
// E. Log rotation by copytruncate while 4 processes write
// ---------------------------------------------------------------------------

describe('rotation', () => {
  it('E. copytruncate every 10 ms under 4 processes x 300 calls: no process stops logging, the live log keeps its header', async (t) => {
    const dir = await tempDirFor(t, 'mul-stress-');
    const mock = await mockFor(t);
    const logDir = join(dir, 'logs');
    const log = join(logDir, 'usage.csv');
    await mkdir(logDir);
    await writeFile(join(dir, 'app.mjs'), SINGLE);
    const { copyFileSync, truncateSync } = await import('node:fs');
    // What logrotate's copytruncate does: copy the file aside, then truncate it in place. Rows
    // written between the copy and the truncation are lost: that is copytruncate's own cost.
    let rotations = 0;
    let stop = false;
    const rotator = (async () => {
      while (!stop) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        try {
          copyFileSync(log, join(logDir, `usage.csv.${++rotations}`));
          truncateSync(log, 0);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }
    })();
    const apps = Array.from({ length: 4 }, () => ({ file: 'app.mjs', env: { CALLS: '300', CONCURRENCY: '4' } }));
    let results: RunResult[];
    try {
      results = await runTogether(dir, mock, log, apps);
    } finally {
      stop = true;
      await rotator;
    }
    for (const result of results) assertRunOk(result, 'ok true\n');
    const served = await mock.waitForServed(1200);
    const servedRows = new Set(served.map(rowTail));
    /** Where each row was found: file names, "*" marking a rotated copy without a header. */
    const found = new Map<string, string[]>();
    let headerless = 0;
    for (const name of await readdir(logDir)) {
      const raw = await readFile(join(logDir, name), 'utf8');
      if (raw === '') continue;
      const hasHeader = raw.startsWith(`${HEADER}\n`);
      if (!hasHeader) {
        // A copy taken after a write that raced the truncation, before any writer's next batch
        // noticed the shrink and put the header back: a window of one batch, not a lasting state.
        assert.notEqual(name, 'usage.csv', `the live log has its header: ${JSON.stringify(raw.slice(0, 200))}`);
        headerless++;
      }
      for (const line of raw.split('\n')) {
        if (line === '' || line === HEADER) continue;
        assert.match(line, ROW, `${name}: an intact row`);
        const tail = line.slice(line.indexOf(',') + 1);
        assert.ok(servedRows.has(tail), `${name}: a row that was served: ${line}`);
        found.set(tail, [...(found.get(tail) ?? []), hasHeader ? name : `${name}*`]);
      }
    }
    const perProcess = new Map<string, number>();
    let twice = 0;
    for (const [tail, files] of found) {
      const tag = tail.slice(0, tail.indexOf('-'));
      perProcess.set(tag, (perProcess.get(tag) ?? 0) + 1);
      if (files.length === 1) continue;
      // The one known way to a row in two files: logrotate truncates the header-less file in the
      // microseconds between the repair's last check and its rename, after copying the row aside.
      assert.ok(files.length === 2 && files.some((file) => file.endsWith('*')), `${tail} is logged once: found in ${files.join(', ')}`);
      twice++;
    }
    t.diagnostic(`${rotations} rotations; ${found.size} of 1200 rows kept (copytruncate loses what lands between copy and truncate); ${headerless} rotated cop${headerless === 1 ? 'y' : 'ies'} without a header; ${twice} row(s) also in such a copy`);
    // Each process went on logging to the end: none of them took the file for a foreign one (before
    // the fix, one process lost 1,424 of 1,500 rows that way). The margin is for copytruncate's own
    // losses on a loaded machine.
    for (const tag of ['p0', 'p1', 'p2', 'p3']) assert.ok((perProcess.get(tag) ?? 0) >= 150, `${tag} logged ${perProcess.get(tag) ?? 0} of 300 rows`);
  });
});
