/**
 * End-to-end guarantees of the CSV usage log: real apps run as child processes under the
 * `--import` preload against the loopback mock, and the test reads the file they leave behind.
 *
 * Every case checks, where practical: the file byte for byte, the lines we print on stderr, the
 * app's exit code and its stdout.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseCsvStrict } from 'csv-parse/sync';
import { CONTENT_PIECES, REPLY_TEXT, zstdAvailable } from './support/mock-mistral.js';
import type { MockMistral, ServedResponse } from './support/mock-mistral.js';
import { LOG_HEADER, LOG_TIMESTAMP, mockFor, ourLines, registerPath, repoRoot, rowTail, runApp, tempDirFor } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';

// ---------------------------------------------------------------------------
// Local helpers
// ---------------------------------------------------------------------------

const HEADER = LOG_HEADER;
const TIMESTAMP = LOG_TIMESTAMP;
/** A realistic row that some earlier run left in a file. */
const OLD_ROW = '2024-01-01T00:00:00.000000+00:00,mistral-small-latest,1,2,3';
/** What a 5-event stream from the mock says. */
const STREAM_TEXT = CONTENT_PIECES.slice(0, 5).join('');

const isRoot = process.getuid?.() === 0;
/** The user root runs an app as when a folder must be unwritable to it. */
const NOBODY = 65534;
/** Whether that user can run the preload from this checkout (not when it lives in a private home). */
const nobodyCanRun =
  isRoot && spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1])', registerPath], { uid: NOBODY, gid: NOBODY, stdio: 'ignore' }).status === 0;
const hasPython = spawnSync('python3', ['-c', 'import csv, datetime'], { stdio: 'ignore' }).status === 0;

/**
 * Checks text made only of rows, each ending in LF: timestamps well formed, the rest exactly
 * what the mock served, in that order. Returns the timestamps.
 */
function assertRows(text: string, served: readonly ServedResponse[]): string[] {
  assert.ok(text.endsWith('\n') || (text === '' && served.length === 0), `rows must end with LF: ${JSON.stringify(text)}`);
  assert.ok(!text.includes('\r'), 'rows are written with LF only');
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  assert.equal(lines.length, served.length, `expected ${served.length} rows, got:\n${text}`);
  const stamps: string[] = [];
  lines.forEach((line, i) => {
    const comma = line.indexOf(',');
    const stamp = line.slice(0, comma);
    assert.match(stamp, TIMESTAMP, `row ${i + 1}: ${line}`);
    assert.equal(line.slice(comma + 1), rowTail(served[i]!), `row ${i + 1}`);
    stamps.push(stamp);
  });
  return stamps;
}

/** Milliseconds since the epoch of a `...T..:..:..ssssss+00:00` timestamp (sub-ms dropped). */
function stampMillis(stamp: string): number {
  return Date.parse(`${stamp.slice(0, 23)}Z`);
}

/**
 * How far a row's timestamp may stray from Date.now(): the microsecond clock follows the monotonic
 * clock and only re-anchors to the wall clock beyond this many milliseconds (src/sink/csv-row.ts).
 */
const CLOCK_SLACK_MS = 20;

/** Bytes, size, inode and mtime (ns): enough to say a file was not touched. */
async function fingerprint(file: string): Promise<{ bytes: string; size: bigint; ino: bigint; mtimeNs: bigint }> {
  const st = await stat(file, { bigint: true });
  return { bytes: (await readFile(file)).toString('base64'), size: st.size, ino: st.ino, mtimeNs: st.mtimeNs };
}

/** No temporary or lock files left next to the log. */
async function assertNoLitter(dir: string, expected: readonly string[]): Promise<void> {
  assert.deepEqual((await readdir(dir)).sort(), [...expected].sort(), `directory ${dir} holds exactly the expected files`);
}

/**
 * Shared app code (plain fetch). No `${` in here: it is a String.raw template.
 * Calls throw on a non-2xx so a broken mock cannot pass for "no row written".
 */
const LIB = String.raw`
import fs from 'node:fs';
const BASE = process.env.MOCK_URL;
const MESSAGES = [{ role: 'user', content: 'hi' }];
async function post(path, body) {
  const res = await fetch(BASE + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(path + ' -> ' + res.status + ' ' + (await res.text()));
  return res;
}
async function chat(model = 'mistral-small-latest', prefix = '') {
  const res = await post(prefix + '/v1/chat/completions', { model, messages: MESSAGES });
  return (await res.json()).choices[0].message.content;
}
async function chatStream(model = 'mistral-small-latest', prefix = '') {
  const res = await post(prefix + '/v1/chat/completions', { model, messages: MESSAGES, stream: true });
  let out = '';
  for (const line of (await res.text()).split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    out += JSON.parse(line.slice(6)).choices[0].delta.content ?? '';
  }
  return out;
}
async function embed(model = 'mistral-embed') {
  const res = await post('/v1/embeddings', { model, input: ['a', 'b'] });
  return (await res.json()).data.length;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Waits until the file holds at least n LF-terminated lines. */
async function waitForLines(file, n) {
  for (let i = 0; i < 1000; i++) {
    let text = '';
    try { text = fs.readFileSync(file, 'utf8'); } catch {}
    if (text.split('\n').length - 1 >= n) return;
    await sleep(5);
  }
  throw new Error('timed out waiting for ' + n + ' lines in ' + file);
}
`;

interface Run extends RunResult {
  started: number;
  ended: number;
}

async function run(opts: {
  dir: string;
  mock: MockMistral;
  log: string;
  source: string;
  preload?: boolean;
  env?: Record<string, string | undefined>;
  /** Run the app as this user (the tests run as root in CI). */
  uid?: number | undefined;
}): Promise<Run> {
  const started = Date.now();
  const result = await runApp({
    cwd: opts.dir,
    source: LIB + opts.source,
    preload: opts.preload ?? true,
    ...(opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid }),
    env: { MOCK_URL: opts.mock.url, MISTRAL_USAGE_HOSTS: opts.mock.hostPort, MISTRAL_USAGE_LOG: opts.log, ...opts.env },
  });
  const ended = Date.now();
  assert.equal(result.timedOut, false, result.stderr);
  return { ...result, started, ended };
}

function assertClean(result: RunResult, stdout: string, code = 0): void {
  assert.deepEqual(ourLines(result.stderr), [], `no lines from us on stderr:\n${result.stderr}`);
  assert.equal(result.stdout, stdout, `stdout (stderr was: ${result.stderr})`);
  assert.equal(result.code, code, result.stderr);
}

// ---------------------------------------------------------------------------
// 1. A new file
// ---------------------------------------------------------------------------

describe('a new log file', () => {
  it('is created with parent folders: header, then one LF row per call, timestamps in range', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'a', 'b', 'c', 'log.csv');
    const result = await run({
      dir,
      mock,
      log,
      source: String.raw`
console.log(await chat('mistral-small-latest'));
console.log(await chatStream('mistral-large-latest'));
console.log(await embed());
console.log(await chat('codestral-latest'));
`,
    });
    assertClean(result, `${REPLY_TEXT}\n${STREAM_TEXT}\n2\n${REPLY_TEXT}\n`);
    assert.equal(result.stderr, '');
    const served = await mock.waitForServed(4);
    const raw = await readFile(log, 'utf8');
    assert.ok(raw.startsWith(`${HEADER}\n`), `header first:\n${raw}`);
    const stamps = assertRows(raw.slice(HEADER.length + 1), served);
    for (const stamp of stamps) {
      const ms = stampMillis(stamp);
      assert.ok(ms >= result.started - CLOCK_SLACK_MS && ms <= result.ended + CLOCK_SLACK_MS, `${stamp} within [${new Date(result.started).toISOString()}, ${new Date(result.ended).toISOString()}]`);
    }
    await assertNoLitter(join(dir, 'a', 'b', 'c'), ['log.csv']);
  });

  it('parses with Python (csv.reader, datetime.fromisoformat)', { skip: hasPython ? false : 'python3 not found' }, async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'usage.csv');
    const result = await run({ dir, mock, log, source: `await chat(); await chatStream(); await embed();\n` });
    assertClean(result, '');
    const served = await mock.waitForServed(3);
    const script = [
      'import csv, datetime, json, sys',
      'with open(sys.argv[1], newline="", encoding="utf-8") as f:',
      '    rows = list(csv.reader(f))',
      'out = {"header": rows[0], "rows": []}',
      'for r in rows[1:]:',
      '    d = datetime.datetime.fromisoformat(r[0])',
      '    assert d.utcoffset() == datetime.timedelta(0), r[0]',
      '    out["rows"].append([int(round(d.timestamp() * 1000000)), r[1], int(r[2]), int(r[3]), int(r[4])])',
      'print(json.dumps(out))',
    ].join('\n');
    const py = spawnSync('python3', ['-c', script, log], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    const parsed = JSON.parse(py.stdout) as { header: string[]; rows: [number, string, number, number, number][] };
    assert.deepEqual(parsed.header, HEADER.split(','));
    assert.deepEqual(
      parsed.rows.map((r) => r.slice(1)),
      served.map((s) => [s.model, s.promptTokens, s.completionTokens, s.totalTokens]),
    );
    for (const [micros] of parsed.rows) assert.ok(micros / 1000 >= result.started - CLOCK_SLACK_MS && micros / 1000 <= result.ended + CLOCK_SLACK_MS);
  });
});

// ---------------------------------------------------------------------------
// 2. An existing file of ours
// ---------------------------------------------------------------------------

describe('an existing log file of ours', () => {
  const cases: { name: string; before: string; keep: string }[] = [
    { name: 'header and rows: appended, old bytes untouched', before: `${HEADER}\n${OLD_ROW}\n`, keep: `${HEADER}\n${OLD_ROW}\n` },
    { name: 'empty: header first', before: '', keep: `${HEADER}\n` },
    { name: 'last row without a newline: the new row starts on its own line', before: `${HEADER}\n${OLD_ROW}`, keep: `${HEADER}\n${OLD_ROW}\n` },
    { name: 'header only, without a newline', before: HEADER, keep: `${HEADER}\n` },
    { name: 'BOM before the header', before: `\uFEFF${HEADER}\n${OLD_ROW}\n`, keep: `\uFEFF${HEADER}\n${OLD_ROW}\n` },
    { name: 'CRLF line endings', before: `${HEADER}\r\n${OLD_ROW}\r\n`, keep: `${HEADER}\r\n${OLD_ROW}\r\n` },
    { name: 'CRLF, last row without a newline', before: `${HEADER}\r\n${OLD_ROW}`, keep: `${HEADER}\r\n${OLD_ROW}\n` },
  ];
  for (const c of cases) {
    it(c.name, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const log = join(dir, 'usage.csv');
      await writeFile(log, c.before);
      const result = await run({ dir, mock, log, source: `console.log(await chat()); await Promise.all([chatStream(), chat('mistral-large-latest')]);\n` });
      assertClean(result, `${REPLY_TEXT}\n`);
      const served = await mock.waitForServed(3);
      const raw = await readFile(log, 'utf8');
      assert.ok(raw.startsWith(c.keep), `kept ${JSON.stringify(c.keep)} at the start of:\n${JSON.stringify(raw)}`);
      // The two concurrent calls may land in either order.
      const tail = raw.slice(c.keep.length);
      const lines = tail.split('\n');
      const order = lines[1]?.endsWith(rowTail(served[1]!)) ? [0, 1, 2] : [0, 2, 1];
      assertRows(tail, order.map((i) => served[i]!));
      await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv']);
    });
  }
});

// ---------------------------------------------------------------------------
// 3. Somebody else's file
// ---------------------------------------------------------------------------

describe('a file that is not a usage log', () => {
  const cases: { name: string; content: string; says: string }[] = [
    { name: 'a different header', content: `Time,Model,Prompt,Completion,Total\n2024-01-01,m,1,2,3\n`, says: 'column 1 is "Time", expected TimestampUTC' },
    { name: 'an extra column', content: `${HEADER},CostUSD\n${OLD_ROW},0.01\n`, says: 'has 6 columns, expected exactly 5' },
    { name: 'a JSON file', content: `{\n  "usage": []\n}\n`, says: 'column 1 is "{", expected TimestampUTC' },
    { name: 'a one-line JSON file without a newline', content: `{"TimestampUTC":1}`, says: 'column 1 is "{\\"TimestampUTC\\":1}"' },
  ];
  for (const c of cases) {
    it(`${c.name}: never touched, exactly one warning naming it, app unchanged`, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const log = join(dir, 'usage.csv');
      await writeFile(log, c.content);
      const before = await fingerprint(log);
      // Many calls, in separate ticks and concurrently, so the sink meets the file many times.
      const source = String.raw`
for (let i = 0; i < 5; i++) console.log(await chat());
await Promise.all([chat(), chatStream(), embed(), chat()]);
await sleep(20);
console.log(await chatStream());
process.exitCode = 0;
`;
      const bare = await run({ dir, mock, log, source, preload: false });
      const result = await run({ dir, mock, log, source });
      assert.equal(result.stdout, bare.stdout);
      assert.equal(result.code, bare.code);
      assert.equal(result.code, 0);
      assert.deepEqual(await fingerprint(log), before);
      const lines = ourLines(result.stderr);
      assert.equal(lines.length, 1, `exactly one warning:\n${result.stderr}`);
      assert.ok(lines[0]!.includes(log), `names the file: ${lines[0]}`);
      assert.ok(lines[0]!.includes(c.says), `says what differs (${c.says}): ${lines[0]}`);
      assert.equal(result.stderr, `${lines[0]}\n`, 'nothing else on stderr');
      await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv']);
    });
  }
});

// ---------------------------------------------------------------------------
// 4. Nowhere to write
// ---------------------------------------------------------------------------

describe('an unwritable log path', () => {
  const source = String.raw`
console.log(await chat());
await Promise.all([chat(), chatStream(), chat()]);
console.log(await chatStream());
`;
  const setups: { name: string; skip?: string; prepare(dir: string): Promise<{ log: string; uid?: number; restore?: () => Promise<void> }> }[] = [
    {
      name: 'a directory',
      prepare: async (dir) => {
        await mkdir(join(dir, 'is-a-dir'));
        return { log: join(dir, 'is-a-dir') };
      },
    },
    {
      name: 'a path whose parent is a regular file',
      prepare: async (dir) => {
        await writeFile(join(dir, 'plain-file'), 'not a folder\n');
        return { log: join(dir, 'plain-file', 'usage.csv') };
      },
    },
    {
      // chmod does not stop root: as root (CI), the app runs as nobody instead.
      name: 'a read-only directory',
      ...(isRoot && !nobodyCanRun ? { skip: 'running as root, and user nobody cannot read this checkout' } : {}),
      prepare: async (dir) => {
        const ro = join(dir, 'read-only');
        await mkdir(ro);
        await chmod(ro, 0o555);
        await chmod(dir, 0o755);
        return { log: join(ro, 'usage.csv'), restore: () => chmod(ro, 0o755).catch(() => {}), ...(isRoot ? { uid: NOBODY } : {}) };
      },
    },
  ];
  for (const setup of setups) {
    const options = setup.skip === undefined ? {} : { skip: setup.skip };
    it(`${setup.name}: the app runs normally, we warn on stderr naming the file`, options, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const { log, restore, uid } = await setup.prepare(dir);
      if (restore) t.after(restore);
      const bare = await run({ dir, mock, log, source, preload: false, uid });
      const result = await run({ dir, mock, log, source, uid });
      assert.equal(bare.code, 0, bare.stderr);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, bare.stdout);
      assert.equal(result.stdout, `${REPLY_TEXT}\n${STREAM_TEXT}\n`);
      const lines = ourLines(result.stderr);
      assert.ok(lines.length >= 1, `at least one warning:\n${result.stderr}`);
      assert.ok(lines[0]!.includes(log), lines[0]);
      assert.equal(result.stderr, lines.map((l) => `${l}\n`).join(''), 'only our lines on stderr');
    });
    it(`${setup.name}: exactly one warning line for 40 calls in 25 batches`, options, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const { log, restore, uid } = await setup.prepare(dir);
      if (restore) t.after(restore);
      const result = await run({ dir, mock, log, uid, source: `${source}for (let i = 0; i < 20; i++) await chat();\nawait Promise.all(Array.from({ length: 15 }, () => chat()));\n` });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(ourLines(result.stderr).length, 1, result.stderr);
      assert.equal(mock.served.length, 40);
    });
  }
});

// ---------------------------------------------------------------------------
// 5. Nothing lost on exit
// ---------------------------------------------------------------------------

describe('nothing is lost when the process ends', () => {
  /** Reads an SSE body until the usage-bearing event is complete, runs `then`, and reads no further. */
  const readUntilUsage = String.raw`
async function streamUntilUsage(prefix, then) {
  const res = await post(prefix + '/v1/chat/completions', { model: 'mistral-small-latest', messages: MESSAGES, stream: true });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('stream ended without usage');
    text += value;
    const at = text.indexOf('"usage"');
    // Stop reading once the usage event is complete: nothing after it is consumed.
    if (at !== -1 && text.indexOf('\n\n', at) !== -1) {
      then();
      return new Promise(() => {});
    }
  }
}
`;
  const cases: { name: string; source: string; code: number; stdout: string; stderrIncludes?: string }[] = [
    {
      name: 'process.exit(0) synchronously after await res.json()',
      source: String.raw`
console.log(await chat());
const res = await post('/v1/chat/completions', { model: 'mistral-large-latest', messages: MESSAGES });
await res.json();
process.exit(0);
`,
      code: 0,
      stdout: `${REPLY_TEXT}\n`,
    },
    {
      name: 'process.exit(0) right after the SSE usage chunk, before [DONE] has even arrived',
      source: `${readUntilUsage}console.log(await chat());\nawait streamUntilUsage('/mock/delay=30', () => process.exit(0));\n`,
      code: 0,
      stdout: `${REPLY_TEXT}\n`,
    },
    {
      name: 'process.exit(0) right after the SSE usage chunk, 1-byte chunks',
      source: `${readUntilUsage}console.log(await chat());\nawait streamUntilUsage('/mock/chunk=1', () => process.exit(0));\n`,
      code: 0,
      stdout: `${REPLY_TEXT}\n`,
    },
    {
      name: 'process.exit(0) right after the usage chunk of a gzip SSE stream, before its end arrives',
      source: `${readUntilUsage}console.log(await chat());\nawait streamUntilUsage('/mock/gzip,delay=30', () => process.exit(0));\n`,
      code: 0,
      stdout: `${REPLY_TEXT}\n`,
    },
    {
      name: 'an uncaught exception right after reading the body',
      source: String.raw`
console.log(await chat());
const res = await post('/v1/chat/completions', { model: 'mistral-large-latest', messages: MESSAGES });
await res.json();
process.nextTick(() => { throw new Error('boom after the body'); });
`,
      code: 1,
      stdout: `${REPLY_TEXT}\n`,
      stderrIncludes: 'boom after the body',
    },
    {
      name: 'an uncaught exception right after the gzip SSE usage chunk',
      source: `${readUntilUsage}console.log(await chat());\nawait streamUntilUsage('/mock/gzip,delay=30', () => process.nextTick(() => { throw new Error('boom in the stream'); }));\n`,
      code: 1,
      stdout: `${REPLY_TEXT}\n`,
      stderrIncludes: 'boom in the stream',
    },
    {
      name: 'an unhandled rejection right after the gzip SSE usage chunk',
      source: `${readUntilUsage}console.log(await chat());\nawait streamUntilUsage('/mock/gzip,delay=30', () => { Promise.reject(new Error('rejected in the stream')); });\n`,
      code: 1,
      stdout: `${REPLY_TEXT}\n`,
      stderrIncludes: 'rejected in the stream',
    },
    {
      name: 'an unhandled rejection right after reading the body',
      source: String.raw`
console.log(await chat());
const res = await post('/v1/chat/completions', { model: 'mistral-large-latest', messages: MESSAGES });
await res.json();
Promise.reject(new Error('rejected after the body'));
`,
      code: 1,
      stdout: `${REPLY_TEXT}\n`,
      stderrIncludes: 'rejected after the body',
    },
    {
      name: 'process.exitCode = 3 and a natural exit',
      source: String.raw`
console.log(await chat());
await chatStream('mistral-large-latest');
process.exitCode = 3;
`,
      code: 3,
      stdout: `${REPLY_TEXT}\n`,
    },
  ];
  // A stream whose usage the app has read, then an end that runs no JavaScript of ours: a signal
  // without a handler (or one that re-raises it), `worker.terminate()`, or the main thread exiting
  // while a worker reads. The row must already be on disk, whatever the stream's encoding.
  const encodings = ['identity', 'gzip', 'deflate', 'br', ...(zstdAvailable ? ['zstd'] : [])];
  const abruptEnds: { name: string; source: (prefix: string) => string; worker?: (prefix: string) => string; signal?: string; stdout: string }[] = [
    {
      name: 'SIGTERM without a handler',
      source: (prefix) => `${readUntilUsage}await streamUntilUsage(${JSON.stringify(prefix)}, () => { console.log('usage read'); process.kill(process.pid, 'SIGTERM'); });\n`,
      signal: 'SIGTERM',
      stdout: 'usage read\n',
    },
    {
      name: 'SIGINT with a handler that re-raises it',
      source: (prefix) =>
        `process.once('SIGINT', () => process.kill(process.pid, 'SIGINT'));\n${readUntilUsage}await streamUntilUsage(${JSON.stringify(prefix)}, () => { console.log('usage read'); process.kill(process.pid, 'SIGINT'); });\n`,
      signal: 'SIGINT',
      stdout: 'usage read\n',
    },
    {
      name: 'worker.terminate()',
      worker: (prefix) => `${readUntilUsage}await streamUntilUsage(${JSON.stringify(prefix)}, () => { parentPort.postMessage('usage read'); });\n`,
      source: () => String.raw`
import { Worker } from 'node:worker_threads';
const worker = new Worker(new URL('./worker.mjs', import.meta.url));
worker.on('error', (error) => { console.error(error); process.exit(2); });
worker.on('message', async (message) => { console.log(message); await worker.terminate(); console.log('terminated'); });
`,
      stdout: 'usage read\nterminated\n',
    },
    {
      name: 'process.exit(0) in the main thread while a worker reads',
      worker: (prefix) => `${readUntilUsage}await streamUntilUsage(${JSON.stringify(prefix)}, () => { parentPort.postMessage('usage read'); setInterval(() => {}, 60000); });\n`,
      source: () => String.raw`
import { Worker } from 'node:worker_threads';
const worker = new Worker(new URL('./worker.mjs', import.meta.url));
worker.on('error', (error) => { console.error(error); process.exit(2); });
worker.on('message', (message) => { console.log(message); process.exit(0); });
`,
      stdout: 'usage read\n',
    },
  ];
  for (const end of abruptEnds) {
    for (const encoding of encodings) {
      it(`${end.name} right after the app read the usage of a ${encoding} stream: the row is there`, async (t) => {
        const dir = await tempDirFor(t, 'mul-csv-');
        const mock = await mockFor(t);
        const log = join(dir, 'usage.csv');
        const prefix = `/mock/${encoding},delay=30`;
        if (end.worker !== undefined) {
          await writeFile(join(dir, 'worker.mjs'), `${LIB}import { parentPort } from 'node:worker_threads';\n${end.worker(prefix)}`);
        }
        const result = await run({ dir, mock, log, source: end.source(prefix) });
        assert.equal(result.signal, end.signal ?? null, result.stderr);
        if (end.signal === undefined) assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, end.stdout);
        assert.deepEqual(ourLines(result.stderr), [], result.stderr);
        const served = await mock.waitForServed(1);
        const raw = await readFile(log, 'utf8').catch(() => '(no file)');
        assert.ok(raw.startsWith(`${HEADER}\n`), raw);
        assertRows(raw.slice(HEADER.length + 1), served);
      });
    }
  }

  for (const c of cases) {
    it(`${c.name}: every row is in the file (3 runs)`, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      for (let round = 0; round < 3; round++) {
        const log = join(dir, `usage-${round}.csv`);
        const from = mock.served.length;
        const result = await run({ dir, mock, log, source: c.source });
        assert.equal(result.code, c.code, result.stderr);
        assert.equal(result.stdout, c.stdout);
        assert.deepEqual(ourLines(result.stderr), [], result.stderr);
        if (c.stderrIncludes !== undefined) assert.ok(result.stderr.includes(c.stderrIncludes), result.stderr);
        else assert.equal(result.stderr, '');
        const served = (await mock.waitForServed(from + 2)).slice(from);
        assert.equal(served.length, 2);
        const raw = await readFile(log, 'utf8');
        assert.ok(raw.startsWith(`${HEADER}\n`), raw);
        assertRows(raw.slice(HEADER.length + 1), served);
      }
    });
  }
});

// ---------------------------------------------------------------------------
// 6. Formula injection and quoting
// ---------------------------------------------------------------------------

describe('model names that a spreadsheet would run, or that need quoting', () => {
  it('are prefixed with a quote where needed, RFC 4180-quoted, and parse back', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'usage.csv');
    // The mock echoes the request's model, so any string reaches the log as the response model.
    const models: { model: string; logged: string; line?: string }[] = [
      { model: 'mistral-small-latest', logged: 'mistral-small-latest', line: 'mistral-small-latest' },
      { model: '=1+1', logged: "'=1+1", line: "'=1+1" },
      { model: '+SUM(A1:A9)', logged: "'+SUM(A1:A9)", line: "'+SUM(A1:A9)" },
      { model: '-2', logged: "'-2", line: "'-2" },
      { model: '@cmd', logged: "'@cmd", line: "'@cmd" },
      { model: '\tcmd', logged: '\\tcmd', line: '\\tcmd' },
      { model: 'a,"b"', logged: 'a,"b"', line: '"a,""b"""' },
      { model: '=HYPERLINK("http://x","y")', logged: `'=HYPERLINK("http://x","y")`, line: `"'=HYPERLINK(""http://x"",""y"")"` },
      // Control characters are escaped: every row stays on one line, the log stays text, and no
      // escape sequence reaches a terminal that shows it.
      { model: 'line\nbreak', logged: 'line\\nbreak', line: 'line\\nbreak' },
      { model: 'carriage\rreturn', logged: 'carriage\\rreturn', line: 'carriage\\rreturn' },
      { model: '\rcr-first', logged: '\\rcr-first', line: '\\rcr-first' },
      { model: 'nul\u0000byte', logged: 'nul\\x00byte', line: 'nul\\x00byte' },
      { model: '\u001b[2J\u001b]0;pwned\u0007esc', logged: '\\x1b[2J\\x1b]0;pwned\\x07esc', line: '\\x1b[2J\\x1b]0;pwned\\x07esc' },
      { model: 'c1\u009b31m\u0085del\u007f', logged: 'c1\\x9b31m\\x85del\\x7f', line: 'c1\\x9b31m\\x85del\\x7f' },
      { model: '=cmd\u0000,"x"', logged: `'=cmd\\x00,"x"`, line: `"'=cmd\\x00,""x"""` },
      { model: 'mistral-é-日本-🙂', logged: 'mistral-é-日本-🙂', line: 'mistral-é-日本-🙂' },
    ];
    const result = await run({
      dir,
      mock,
      log,
      source: `const MODELS = ${JSON.stringify(models.map((m) => m.model))};\n` + String.raw`
for (const [i, model] of MODELS.entries()) {
  if (i % 2 === 0) await chat(model);
  else await chatStream(model);
}
console.log('done');
`,
    });
    assertClean(result, 'done\n');
    const served = await mock.waitForServed(models.length);
    assert.deepEqual(served.map((s) => s.model), models.map((m) => m.model));
    const raw = await readFile(log, 'utf8');
    assert.ok(raw.startsWith(`${HEADER}\n`));
    const records = parseCsvStrict(raw, { columns: true, relax_column_count: false }) as Record<string, string>[];
    assert.equal(records.length, models.length);
    records.forEach((record, i) => {
      const s = served[i]!;
      assert.deepEqual(
        { ...record, TimestampUTC: '' },
        { TimestampUTC: '', Model: models[i]!.logged, PromptTokens: String(s.promptTokens), CompletionTokens: String(s.completionTokens), TotalTokens: String(s.totalTokens) },
      );
      assert.match(record['TimestampUTC']!, TIMESTAMP);
      const line = models[i]!.line;
      if (line !== undefined) {
        assert.ok(raw.includes(`${record['TimestampUTC']},${line},${s.promptTokens},${s.completionTokens},${s.totalTokens}\n`), `raw row for ${JSON.stringify(models[i]!.model)}`);
      }
    });
    // No cell of the parsed file starts like a formula.
    for (const record of records) assert.doesNotMatch(record['Model']!, /^[=+\-@\t\r]/);
    // One line per row, and no control character anywhere but the line ends.
    assert.equal(raw.split('\n').length - 1, models.length + 1);
    assert.doesNotMatch(raw.replaceAll('\n', ''), /[\u0000-\u001f\u007f-\u009f]/);
    // Our own validator reads it as a valid log (a NUL used to make it "a binary file").
    const validate = spawnSync(process.execPath, [join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'validate', log], { encoding: 'utf8' });
    assert.equal(validate.status, 0, validate.stdout + validate.stderr);
    assert.match(validate.stdout + validate.stderr, new RegExp(`valid \\(${models.length} rows`));
  });
});

// ---------------------------------------------------------------------------
// 7. Where the file goes, and when it is not created at all
// ---------------------------------------------------------------------------

describe('the log path', () => {
  const childSource = String.raw`
import { spawn } from 'node:child_process';
export function runChild(script, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      cwd,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, NODE_OPTIONS: '--import=' + process.env.REGISTER_URL },
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error('child exited with ' + code))));
  });
}
`;

  for (const parentCalls of [true, false]) {
    it(`a relative MISTRAL_USAGE_LOG resolves against the first process's cwd, children elsewhere share it (parent ${parentCalls ? 'calls too' : 'makes no call'})`, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const first = join(dir, 'first');
      const other = join(dir, 'other');
      const third = join(dir, 'third');
      for (const d of [first, other, third]) await mkdir(d);
      await writeFile(join(dir, 'spawn.mjs'), childSource);
      // other/child.mjs calls twice and starts third/grandchild.mjs, which calls once.
      await writeFile(
        join(other, 'child.mjs'),
        LIB + `import { runChild } from '../spawn.mjs';\nconsole.log('child', await chat('child-model'), await chatStream('child-model'));\nawait runChild('../third/grandchild.mjs', '../third');\n`,
      );
      await writeFile(join(third, 'grandchild.mjs'), LIB + `console.log('grandchild', await embed('grandchild-model'));\n`);
      const result = await run({
        dir: first,
        mock,
        log: join('logs', 'usage.csv'),
        env: { REGISTER_URL: pathToFileURL(registerPath).href },
        source:
          `import { runChild } from '../spawn.mjs';\n` +
          (parentCalls ? `console.log('parent', await chat('parent-model'));\n` : '') +
          `await runChild('child.mjs', '../other');\n`,
      });
      assertClean(
        result,
        (parentCalls ? `parent ${REPLY_TEXT}\n` : '') + `child ${REPLY_TEXT} ${STREAM_TEXT}\ngrandchild 2\n`,
      );
      const served = await mock.waitForServed(parentCalls ? 4 : 3);
      const raw = await readFile(join(first, 'logs', 'usage.csv'), 'utf8');
      assert.ok(raw.startsWith(`${HEADER}\n`));
      assertRows(raw.slice(HEADER.length + 1), served);
      for (const d of [other, third, dir]) {
        await assert.rejects(stat(join(d, 'logs')), { code: 'ENOENT' }, `no logs/ folder in ${d}`);
      }
      await assertNoLitter(join(first, 'logs'), ['usage.csv']);
    });
  }

  const noCall: { name: string; source: string; stdout: string; stderrIncludes?: string }[] = [
    { name: 'an app that does nothing', source: `console.log('nothing');\n`, stdout: 'nothing\n' },
    {
      name: 'an app that only calls a non-Mistral host (serving usage-shaped JSON)',
      source: String.raw`
const res = await fetch(process.env.OTHER_URL + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', messages: MESSAGES }) });
console.log((await res.json()).usage.total_tokens > 0);
`,
      stdout: 'true\n',
    },
    {
      name: 'an app that only lists models (GET /v1/models)',
      source: String.raw`
const res = await fetch(BASE + '/v1/models');
console.log((await res.json()).data.length > 0);
`,
      stdout: 'true\n',
    },
    {
      name: 'an app whose only call fails (401)',
      source: String.raw`
const res = await fetch(BASE + '/mock/status=401/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'x', messages: MESSAGES }) });
console.log(res.status);
`,
      stdout: '401\n',
    },
  ];
  for (const c of noCall) {
    it(`is never created by ${c.name}`, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const otherHost = await mockFor(t);
      const log = join(dir, 'not-created', 'usage.csv');
      const result = await run({ dir, mock, log, source: c.source, env: { OTHER_URL: otherHost.url } });
      assertClean(result, c.stdout);
      assert.equal(result.stderr, '');
      await assert.rejects(stat(join(dir, 'not-created')), { code: 'ENOENT' });
      await assertNoLitter(dir, ['app.mjs', 'node_modules']);
    });
  }
});

// ---------------------------------------------------------------------------
// 8. The file changes under a running app
// ---------------------------------------------------------------------------

describe('the log file changes while the app runs', () => {
  const source = String.raw`
const LOG = process.env.TARGET_LOG;
console.log(await chat('first-model'));
await waitForLines(LOG, 2);
switch (process.env.MODE) {
  case 'delete': fs.unlinkSync(LOG); break;
  case 'move': fs.renameSync(LOG, LOG + '.moved'); break;
  case 'truncate': fs.truncateSync(LOG, 0); break;
  case 'replace':
    fs.writeFileSync(LOG + '.new', process.env.REPLACEMENT);
    fs.renameSync(LOG + '.new', LOG);
    break;
}
console.log(await chat('second-model'));
`;
  const replacement = `${HEADER}\n${OLD_ROW}\n`;
  const cases: { mode: string; keep: string; moved?: boolean }[] = [
    { mode: 'delete', keep: `${HEADER}\n` },
    { mode: 'move', keep: `${HEADER}\n`, moved: true },
    { mode: 'truncate', keep: `${HEADER}\n` },
    { mode: 'replace', keep: replacement },
  ];
  for (const c of cases) {
    it(`${c.mode}: the next row goes to the file now at the path`, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const log = join(dir, 'usage.csv');
      const result = await run({ dir, mock, log, source, env: { TARGET_LOG: log, MODE: c.mode, REPLACEMENT: replacement } });
      assertClean(result, `${REPLY_TEXT}\n${REPLY_TEXT}\n`);
      const [firstCall, secondCall] = await mock.waitForServed(2);
      const raw = await readFile(log, 'utf8');
      assert.ok(raw.startsWith(c.keep), JSON.stringify(raw));
      assertRows(raw.slice(c.keep.length), [secondCall!]);
      const expectedFiles = ['app.mjs', 'node_modules', 'usage.csv'];
      if (c.moved) {
        const moved = await readFile(`${log}.moved`, 'utf8');
        assert.ok(moved.startsWith(`${HEADER}\n`));
        assertRows(moved.slice(HEADER.length + 1), [firstCall!]);
        expectedFiles.push('usage.csv.moved');
      }
      await assertNoLitter(dir, expectedFiles);
    });
  }
});

// ---------------------------------------------------------------------------
// 9. install() in code while the preload is active
// ---------------------------------------------------------------------------

describe('install() called by the app while the preload is already active', () => {
  const indexUrl = pathToFileURL(join(repoRoot, 'dist', 'src', 'index.js')).href;
  it('warns once that its logPath is ignored, and rows go on to the active log', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'usage.csv');
    const result = await run({
      dir,
      mock,
      log,
      env: { INDEX_URL: indexUrl },
      source: String.raw`
const { install } = await import(process.env.INDEX_URL);
const uninstall = install({ logPath: 'other.csv' });
install({ logPath: 'other.csv' });
install(); // asks for nothing different: silent
console.log(await chat());
uninstall(); // a no-op: the preload stays
console.log(await chat());
`,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `${REPLY_TEXT}\n${REPLY_TEXT}\n`);
    assert.deepEqual(ourLines(result.stderr), [
      `mistral-usage-log: install() was called while mistral-usage-log is already active in this thread (the preload?), so logPath ${JSON.stringify(join(dir, 'other.csv'))} is ignored (usage goes to ${log})`,
    ]);
    const served = await mock.waitForServed(2);
    const raw = await readFile(log, 'utf8');
    assertRows(raw.slice(HEADER.length + 1), served);
    await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv']);
  });
});

// ---------------------------------------------------------------------------
// 10. Special files: devices, FIFOs, the app's own stdout, dangling links
// ---------------------------------------------------------------------------

describe('MISTRAL_USAGE_LOG naming something other than a regular file', () => {
  /** One call from the main thread, one from a worker thread: the worker must not add a header. */
  const withWorker = String.raw`
import { Worker } from 'node:worker_threads';
console.log('main', await chat());
fs.writeFileSync('worker.mjs', 'const r = await fetch(process.env.MOCK_URL + "/v1/embeddings", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "mistral-embed", input: ["a"] }) }); await r.json();');
await new Promise((resolve, reject) => { const w = new Worker('./worker.mjs'); w.on('error', reject); w.on('exit', resolve); });
console.log('worker done');
console.log(await chatStream());
`;
  const ROW = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00,/;

  it('/dev/stdout (a pipe): one header, then each row whole, in order with the app\'s own output', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const result = await run({ dir, mock, log: '/dev/stdout', source: withWorker });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '', 'nothing from us on stderr');
    const served = await mock.waitForServed(3);
    const lines = result.stdout.split('\n');
    assert.equal(lines.pop(), '');
    const rows = lines.filter((line) => ROW.test(line));
    assert.deepEqual(
      lines.map((line) => (ROW.test(line) ? 'ROW' : line)),
      [HEADER, 'ROW', `main ${REPLY_TEXT}`, 'ROW', 'worker done', 'ROW', STREAM_TEXT],
      result.stdout,
    );
    assert.deepEqual(rows.map((row) => row.slice(row.indexOf(',') + 1)), served.map(rowTail));
  });

  it('/dev/stdout redirected to a file (`> out.txt`): rows go in between the app\'s lines, nothing overwritten', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const { open } = await import('node:fs/promises');
    const { spawn } = await import('node:child_process');
    const { childEnv, linkNodeModules } = await import('./support/run-app.js');
    await writeFile(join(dir, 'app.mjs'), LIB + `console.log('before'); console.log(await chat()); console.log(await chatStream()); console.log('after');\n`);
    await linkNodeModules(dir);
    const out = join(dir, 'out.txt');
    const handle = await open(out, 'w'); // O_TRUNC without O_APPEND, as a shell's `>`
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', pathToFileURL(registerPath).href, 'app.mjs'], {
          cwd: dir,
          stdio: ['ignore', handle.fd, 'inherit'],
          env: childEnv({ MOCK_URL: mock.url, MISTRAL_USAGE_HOSTS: mock.hostPort, MISTRAL_USAGE_LOG: '/dev/stdout' }),
        });
        child.on('error', reject);
        child.on('close', resolve);
      });
      assert.equal(code, 0);
    } finally {
      await handle.close();
    }
    const served = await mock.waitForServed(2);
    const lines = (await readFile(out, 'utf8')).split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((line) => (ROW.test(line) ? 'ROW' : line)), ['before', HEADER, 'ROW', REPLY_TEXT, 'ROW', STREAM_TEXT, 'after']);
    assert.deepEqual(lines.filter((line) => ROW.test(line)).map((row) => row.slice(row.indexOf(',') + 1)), served.map(rowTail));
  });

  it('/dev/null: rows vanish quietly, the app is unchanged', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const bare = await run({ dir, mock, log: '/dev/null', source: withWorker, preload: false });
    const result = await run({ dir, mock, log: '/dev/null', source: withWorker });
    assertClean(result, bare.stdout);
    assert.equal(result.stderr, '');
    await assertNoLitter(dir, ['app.mjs', 'node_modules', 'worker.mjs']);
  });

  it('a FIFO with a reader: the reader gets one header and every row', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const fifo = join(dir, 'usage.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const { spawn } = await import('node:child_process');
    const reader = spawn('cat', [fifo], { stdio: ['ignore', 'pipe', 'inherit'] });
    let read = '';
    reader.stdout.on('data', (chunk: Buffer) => (read += chunk.toString('utf8')));
    const readerDone = new Promise((resolve) => reader.on('close', resolve));
    // Opening the FIFO for writing from here lets cat's open return; closing it leaves cat waiting for the app.
    const { open } = await import('node:fs/promises');
    const keeper = await open(fifo, 'w');
    const result = await run({ dir, mock, log: fifo, source: withWorker });
    await keeper.close();
    await readerDone;
    assertClean(result, `main ${REPLY_TEXT}\nworker done\n${STREAM_TEXT}\n`);
    const served = await mock.waitForServed(3);
    assert.ok(read.startsWith(`${HEADER}\n`), read);
    assertRows(read.slice(HEADER.length + 1), served);
  });

  it('a FIFO that nobody reads: one warning that says so, the app neither blocks nor changes', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const fifo = join(dir, 'usage.fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const result = await run({ dir, mock, log: fifo, source: withWorker });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `main ${REPLY_TEXT}\nworker done\n${STREAM_TEXT}\n`);
    const lines = ourLines(result.stderr);
    // One line per thread at most: the worker has its own log handle.
    assert.ok(lines.length >= 1 && lines.length <= 2, result.stderr);
    for (const line of lines) {
      assert.equal(line, `mistral-usage-log: cannot write the usage log ${fifo} (it is a named pipe (FIFO) and no process is reading it); usage is not being logged: set MISTRAL_USAGE_LOG to a writable file`);
    }
  });

  it('a dangling symbolic link: the file it points to is created, with its folder', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const { symlink, lstat } = await import('node:fs/promises');
    const link = join(dir, 'usage.csv');
    await symlink(join('shared', 'logs', 'real.csv'), link);
    const result = await run({ dir, mock, log: link, source: `console.log(await chat()); console.log(await chatStream());\n` });
    assertClean(result, `${REPLY_TEXT}\n${STREAM_TEXT}\n`);
    const served = await mock.waitForServed(2);
    assert.ok((await lstat(link)).isSymbolicLink(), 'the link is kept');
    const raw = await readFile(join(dir, 'shared', 'logs', 'real.csv'), 'utf8');
    assert.ok(raw.startsWith(`${HEADER}\n`), raw);
    assertRows(raw.slice(HEADER.length + 1), served);
    await assertNoLitter(join(dir, 'shared', 'logs'), ['real.csv']);
  });
});

// ---------------------------------------------------------------------------
// 11. A lock file another process holds (or left behind)
// ---------------------------------------------------------------------------

describe('a repair lock held by another process', () => {
  // The log is empty, so the first batch must write the header under FILE.lock, which is fresh.
  const monitor = String.raw`
const LOG = process.env.TARGET_LOG;
let maxGap = 0;
let last = performance.now();
const timer = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; }, 1);
const report = () => { clearInterval(timer); console.log(maxGap < 1000 ? 'never blocked' : 'event loop blocked for ' + Math.round(maxGap) + ' ms'); };
`;
  it('never blocks the event loop; the waiting rows are written as soon as the lock goes', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'usage.csv');
    await writeFile(log, '');
    await writeFile(`${log}.lock`, '');
    const result = await run({
      dir,
      mock,
      log,
      env: { TARGET_LOG: log },
      source: `${monitor}
await chat();
await chatStream();
await sleep(50);
if (fs.readFileSync(LOG, 'utf8') !== '') throw new Error('written while the lock was held');
fs.unlinkSync(LOG + '.lock'); // the other process is done
await waitForLines(LOG, 3); // the two waiting rows follow within moments, not at exit
await chat();
report();
`,
    });
    assertClean(result, 'never blocked\n');
    const served = await mock.waitForServed(3);
    const raw = await readFile(log, 'utf8');
    assert.ok(raw.startsWith(`${HEADER}\n`), raw);
    assertRows(raw.slice(HEADER.length + 1), served);
    await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv']);
  });

  it('a lock left behind (younger than 10 s) never blocks the event loop; the rows are written at exit, the lock is left alone', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'usage.csv');
    await writeFile(log, '');
    await writeFile(`${log}.lock`, '');
    const result = await run({ dir, mock, log, env: { TARGET_LOG: log }, source: `${monitor}\nawait chat();\nawait Promise.all([chatStream(), chat()]);\nawait embed();\nreport();\n` });
    assertClean(result, 'never blocked\n');
    const served = await mock.waitForServed(4);
    const raw = await readFile(log, 'utf8');
    assert.ok(raw.startsWith(`${HEADER}\n`), raw);
    const tail = raw.slice(HEADER.length + 1);
    const order = tail.split('\n')[1]?.endsWith(rowTail(served[1]!)) ? [0, 1, 2, 3] : [0, 2, 1, 3];
    assertRows(tail, order.map((i) => served[i]!));
    await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv', 'usage.csv.lock']);
  });
});

// ---------------------------------------------------------------------------
// 12. A file that was foreign once, and a log that lost its header
// ---------------------------------------------------------------------------

describe('a log that was not ours, or lost its header, while the app runs', () => {
  const FOREIGN = 'Time,Model,Prompt,Completion,Total\n2024-01-01,m,1,2,3\n';
  const source = String.raw`
const LOG = process.env.TARGET_LOG;
console.log(await chat('refused-1'));
await Promise.all([chat('refused-2'), chatStream('refused-3')]);
switch (process.env.MODE) {
  case 'move': fs.renameSync(LOG, LOG + '.theirs'); break;
  case 'delete': fs.unlinkSync(LOG); break;
  case 'empty': fs.truncateSync(LOG, 0); break;
  case 'replace': fs.writeFileSync(LOG + '.new', process.env.REPLACEMENT); fs.renameSync(LOG + '.new', LOG); break;
}
console.log(await chat('logged-1'));
await sleep(20);
console.log(await chatStream('logged-2'));
`;
  const cases: { mode: string; keep: string; theirs?: boolean }[] = [
    { mode: 'move', keep: `${HEADER}\n`, theirs: true },
    { mode: 'delete', keep: `${HEADER}\n` },
    { mode: 'empty', keep: `${HEADER}\n` },
    { mode: 'replace', keep: `${HEADER}\n${OLD_ROW}\n` },
  ];
  for (const c of cases) {
    it(`a foreign file, then ${c.mode === 'empty' ? 'emptied' : `${c.mode}d`}: one warning, and logging resumes with the next call`, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const log = join(dir, 'usage.csv');
      await writeFile(log, FOREIGN);
      const result = await run({ dir, mock, log, source, env: { TARGET_LOG: log, MODE: c.mode, REPLACEMENT: `${HEADER}\n${OLD_ROW}\n` } });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${REPLY_TEXT}\n${REPLY_TEXT}\n${STREAM_TEXT}\n`);
      const lines = ourLines(result.stderr);
      assert.equal(lines.length, 1, result.stderr);
      assert.ok(lines[0]!.includes('column 1 is "Time", expected TimestampUTC'), lines[0]);
      const served = await mock.waitForServed(5);
      const raw = await readFile(log, 'utf8');
      assert.ok(raw.startsWith(c.keep), JSON.stringify(raw));
      assertRows(raw.slice(c.keep.length), served.slice(3));
      if (c.theirs) assert.equal(await readFile(`${log}.theirs`, 'utf8'), FOREIGN, 'their file is untouched');
      await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv', ...(c.theirs ? ['usage.csv.theirs'] : [])]);
    });
  }

  it('truncated, and another writer\'s row landed first (copytruncate racing a write): the header comes back, rows kept', async (t) => {
    const dir = await tempDirFor(t, 'mul-csv-');
    const mock = await mockFor(t);
    const log = join(dir, 'usage.csv');
    const result = await run({
      dir,
      mock,
      log,
      env: { TARGET_LOG: log, RACED_ROW: OLD_ROW },
      source: String.raw`
const LOG = process.env.TARGET_LOG;
console.log(await chat('before'));
await waitForLines(LOG, 2);
// What a lost race leaves: the file truncated, then a row of another process's at offset 0.
fs.truncateSync(LOG, 0);
fs.appendFileSync(LOG, process.env.RACED_ROW + '\n');
console.log(await chat('after-1'));
await chatStream('after-2');
`,
    });
    assertClean(result, `${REPLY_TEXT}\n${REPLY_TEXT}\n`);
    const served = await mock.waitForServed(3);
    const raw = await readFile(log, 'utf8');
    const keep = `${HEADER}\n${OLD_ROW}\n`;
    assert.ok(raw.startsWith(keep), JSON.stringify(raw));
    assertRows(raw.slice(keep.length), served.slice(1));
    await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv']);
  });

  // Found at start: a log that lost its header (to a truncation that raced a write), a user's rows.
  const LAST = '2024-01-01T00:00:01.000000+00:00,mistral-large-latest,4,5,9';
  const headerless: { name: string; before: string; keep: string; last?: string }[] = [
    { name: 'rows without a header: the header is put back, the rows kept', before: `${OLD_ROW}\n${LAST}\n`, keep: `${HEADER}\n${OLD_ROW}\n${LAST}\n` },
    {
      // Its last line is copied once no write can still be under way (a second, or exit), after the new rows.
      name: 'rows without a header or a final newline: the last row is kept, with a newline',
      before: `${OLD_ROW}\n${LAST}`,
      keep: `${HEADER}\n${OLD_ROW}\n`,
      last: `${LAST}\n`,
    },
    {
      // What an emptied file holds when a row of a writer that had not seen the truncation lands
      // between another process's check and its header.
      name: 'a header that landed after a racing row: moved to the top, one header',
      before: `${OLD_ROW}\n${HEADER}\n${LAST}\n`,
      keep: `${HEADER}\n${OLD_ROW}\n${LAST}\n`,
    },
  ];
  for (const c of headerless) {
    it(c.name, async (t) => {
      const dir = await tempDirFor(t, 'mul-csv-');
      const mock = await mockFor(t);
      const log = join(dir, 'usage.csv');
      await writeFile(log, c.before);
      const result = await run({ dir, mock, log, source: `console.log(await chat());\nconsole.log(await chatStream());\n` });
      assertClean(result, `${REPLY_TEXT}\n${STREAM_TEXT}\n`);
      const served = await mock.waitForServed(2);
      const raw = await readFile(log, 'utf8');
      const last = c.last ?? '';
      assert.ok(raw.startsWith(c.keep) && raw.endsWith(last), JSON.stringify(raw));
      assertRows(raw.slice(c.keep.length, raw.length - last.length), served);
      await assertNoLitter(dir, ['app.mjs', 'node_modules', 'usage.csv']);
    });
  }
});
