/**
 * End-to-end: the app cannot tell the preload is there, and bad input of every kind costs it nothing.
 *
 * Every case runs a real app (an .mjs in a temp dir) as a child process twice, WITHOUT and WITH
 * `--import register.js`, each against its own fresh loopback mock (so both see byte-identical
 * responses), and compares what the app printed. The preload may only add lines starting with
 * `mistral-usage-log:` to stderr, and CSV rows that match what the mock served with usage.
 *
 * Every app runs with --trace-warnings --unhandled-rejections=strict --pending-deprecation, and
 * every comparison checks that the preload added no Node warning (case 9 is everywhere).
 *
 * Requires `npm run build` (the children load the built register.js).
 */
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { connect as netConnect } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { cp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startMockMistral, zstdAvailable } from './support/mock-mistral.js';
import type { MockMistral } from './support/mock-mistral.js';
import { linkNodeModules, LOG_HEADER, LOG_TIMESTAMP, OUR_PREFIX, readCsv, registerPath, repoRoot, runApp, runNode, tempDir, tempDirFor } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';

// ---------------------------------------------------------------------------
// Running one app with and without the preload
// ---------------------------------------------------------------------------

const HEADER = LOG_HEADER;
const STRICT_FLAGS = ['--trace-warnings', '--unhandled-rejections=strict', '--pending-deprecation'];
const NODE_WARNING = /\(node:\d+\)|Warning:|Unhandled|unhandled rejection/;
const registerUrl = pathToFileURL(registerPath).href;

/** What the app left behind in one run. Output is normalised: ports and the Date header vary. */
interface Side {
  preload: boolean;
  result: RunResult;
  stdout: string;
  /** Our lines (`mistral-usage-log: ...`), normalised. */
  ours: string[];
  /** Every other stderr line, normalised. */
  appStderr: string[];
  /** Rows after the header (timestamp first); undefined when no log file exists. */
  rows: string[][] | undefined;
  logPath: string;
  mock: MockMistral;
}

interface RunSpec {
  /** The app's body; APP_LIB (helpers: post, show, chat, ...) is prepended. */
  source: string;
  /** Extra environment for the child, given the mock it talks to. */
  env?: (mock: MockMistral) => Record<string, string | undefined>;
  /** Extra `host:port` entries for MISTRAL_USAGE_HOSTS (besides the mock). */
  extraHosts?: string[];
  /** Other loopback servers whose ports appear in the output (normalised to <name>). */
  servers?: Record<string, { hostPort: string }>;
  /** Node flags after the preload (STRICT_FLAGS are always added). */
  nodeArgs?: string[];
  /** Whether runApp adds `--import register.js` for the instrumented side (default true). */
  preloadFlag?: boolean;
  timeoutMs?: number;
  /** Called while the child runs, e.g. to watch the mock; the run is awaited afterwards. */
  during?: (mock: MockMistral, run: Promise<RunResult>) => Promise<void>;
}

async function runSide(t: TestContext, spec: RunSpec, preload: boolean): Promise<Side> {
  const dir = await tempDirFor(t);
  const mock = await startMockMistral();
  try {
    const logPath = join(dir, 'log.csv');
    const env: Record<string, string | undefined> = {
      MOCK_URL: mock.url,
      MISTRAL_USAGE_HOSTS: [mock.hostPort, ...(spec.extraHosts ?? [])].join(','),
      MISTRAL_USAGE_LOG: logPath,
      ...spec.env?.(mock),
    };
    const running = runApp({
      cwd: dir,
      source: APP_LIB + spec.source,
      preload: preload && spec.preloadFlag !== false,
      env,
      nodeArgs: [...STRICT_FLAGS, ...(spec.nodeArgs ?? [])],
      timeoutMs: spec.timeoutMs ?? 30_000,
    });
    if (spec.during) await spec.during(mock, running);
    const result = await running;
    const servers = { mock, ...spec.servers };
    const stderr = normalise(result.stderr, servers);
    const lines = stderr.split('\n').filter((line) => line !== '');
    return {
      preload,
      result,
      stdout: normalise(result.stdout, servers),
      ours: lines.filter((line) => line.startsWith(OUR_PREFIX)),
      appStderr: lines.filter((line) => !line.startsWith(OUR_PREFIX)),
      rows: existsSync(logPath) ? await readRows(logPath) : undefined,
      logPath,
      mock,
    };
  } finally {
    await mock.close();
  }
}

/** The same app without, then with the preload (in parallel unless timing or memory matter). */
async function runBoth(t: TestContext, spec: RunSpec, sequential = false): Promise<{ plain: Side; inst: Side }> {
  if (sequential) {
    const plain = await runSide(t, spec, false);
    return { plain, inst: await runSide(t, spec, true) };
  }
  const [plain, inst] = await Promise.all([runSide(t, spec, false), runSide(t, spec, true)]);
  return { plain, inst };
}

function normalise(text: string, servers: Record<string, { hostPort: string }>): string {
  let out = text;
  for (const [name, server] of Object.entries(servers)) out = out.split(server.hostPort).join(`<${name}>`);
  // The Date header moves with the clock; everything else the mock sends is deterministic.
  return out.replace(/^header date: .*$/gm, 'header date: <date>').replace(/\(node:\d+\)/g, '(node:<pid>)');
}

async function readRows(logPath: string): Promise<string[][]> {
  const csv = await readCsv(logPath);
  assert.equal(csv.header, HEADER, 'the log starts with the mandatory header');
  for (const row of csv.rows) assert.match(row[0] ?? '', LOG_TIMESTAMP);
  return csv.rows;
}

/** The app noticed nothing: same stdout, exit code, signal, own stderr; no Node warning added. */
function assertAppUnaffected(plain: Side, inst: Side): void {
  assert.equal(plain.result.timedOut, false, `uninstrumented run timed out:\n${plain.result.stderr}`);
  assert.equal(inst.result.timedOut, false, `instrumented run timed out:\n${inst.result.stderr}`);
  assert.equal(inst.stdout, plain.stdout, 'stdout differs with the preload');
  assert.equal(inst.result.code, plain.result.code, `exit code differs; stderr:\n${inst.result.stderr}`);
  assert.equal(inst.result.signal, plain.result.signal);
  assert.deepEqual(inst.appStderr, plain.appStderr, 'the preload changed stderr beyond its own prefixed lines');
  const added = inst.appStderr.filter((line) => NODE_WARNING.test(line) && !plain.appStderr.includes(line));
  assert.deepEqual(added, [], 'the preload caused a Node warning or unhandled rejection');
}

/** One row per response the mock served with usage, same numbers, same order. */
function assertRowsMatchServed(side: Side): void {
  const expected = side.mock.served.map((s) => [s.model, String(s.promptTokens), String(s.completionTokens), String(s.totalTokens)]);
  const actual = (side.rows ?? []).map((row) => row.slice(1));
  assert.deepEqual(actual, expected, 'CSV rows differ from what the mock served with usage');
}

function assertSilent(side: Side): void {
  assert.deepEqual(side.ours, [], 'the preload wrote to stderr');
}

// ---------------------------------------------------------------------------
// Helpers available to every app (plain JS, prepended to its source)
// ---------------------------------------------------------------------------

const APP_LIB = `
const MOCK = process.env.MOCK_URL;
const MODEL = 'mistral-small-latest';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const chat = (extra = {}) => ({ model: MODEL, messages: [{ role: 'user', content: 'Bonjour 🙂' }], ...extra });
function post(url, body, init = {}) {
  return fetch(url.startsWith('http') ? url : MOCK + url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test' },
    body: JSON.stringify(body),
    ...init,
  });
}
function describeError(error) {
  const parts = [];
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 4; e = e.cause, depth++) {
    parts.push(typeof e === 'object' ? [e.constructor && e.constructor.name, e.name, 'code=' + e.code, JSON.stringify(e.message)].join(' ') : String(e));
  }
  return parts.join(' <- ');
}
async function show(label, res) {
  const out = ['== ' + label];
  out.push('status ' + res.status + ' ' + JSON.stringify(res.statusText) + ' ok=' + res.ok);
  out.push('url ' + res.url + ' redirected=' + res.redirected + ' type=' + res.type);
  out.push('instanceof Response=' + (res instanceof Response) + ' proto=' + (Object.getPrototypeOf(res) === Response.prototype)
    + ' headers instanceof Headers=' + (res.headers instanceof Headers));
  out.push('own keys ' + Reflect.ownKeys(res).map(String).join(','));
  const headers = [...res.headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, value] of headers) out.push('header ' + name + ': ' + value);
  out.push('bodyUsed before=' + res.bodyUsed + ' body=' + (res.body === null ? 'null' : res.body.constructor.name));
  try {
    const bytes = Buffer.from(await res.arrayBuffer());
    out.push('body ' + bytes.length + ' bytes base64 ' + bytes.toString('base64'));
  } catch (error) {
    out.push('body error ' + describeError(error));
  }
  out.push('bodyUsed after=' + res.bodyUsed);
  console.log(out.join('\\n'));
}
`;

// ---------------------------------------------------------------------------
// Local servers the mock cannot play: broken bodies, a forward proxy
// ---------------------------------------------------------------------------

interface LocalServer {
  url: string;
  hostPort: string;
  close(): Promise<void>;
}

async function listen(server: Server, extraSockets: Set<Socket> = new Set()): Promise<LocalServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hostPort: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of extraSockets) socket.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A gzip header followed by bytes that are not deflate data. */
const CORRUPT_GZIP = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03]), Buffer.from('not deflate data \xff\xfe\x00\x01 at all', 'latin1')]);
/** `compress` (LZW) data: its magic number, then codes that are not text. */
const LZW_BODY = Buffer.from([0x1f, 0x9d, 0x90, 0x7b, 0x22, 0x88, 0x41, 0x04, 0x0a, 0x3c, 0x70, 0x61, 0x83, 0x86, 0x0d]);

/**
 * Broken 2xx responses, by path prefix (all end in /v1/chat/completions so they look like chat):
 * /corrupt-gzip (JSON or SSE by the request's `stream`), /compress (LZW data, which nobody decodes),
 * /empty (a 2xx with no body, JSON or SSE).
 */
function startOddServer(): Promise<LocalServer> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const stream = Buffer.concat(chunks).toString('utf8').includes('"stream":true');
      const contentType = stream ? 'text/event-stream' : 'application/json';
      const path = req.url ?? '';
      if (path.startsWith('/corrupt-gzip/')) {
        res.writeHead(200, { 'content-type': contentType, 'content-encoding': 'gzip', 'content-length': String(CORRUPT_GZIP.length) });
        res.end(CORRUPT_GZIP);
      } else if (path.startsWith('/compress/')) {
        // Real LZW data: no client decodes it, so the app cannot read usage from it, nor can we.
        // (A readable body under an unknown label is logged: see clients.test.ts.)
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'compress', 'content-length': String(LZW_BODY.length) });
        res.end(LZW_BODY);
      } else if (path.startsWith('/empty/')) {
        res.writeHead(200, stream ? { 'content-type': contentType } : { 'content-type': contentType, 'content-length': '0' });
        res.end();
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('no such odd route');
      }
    });
  });
  return listen(server);
}

interface ForwardProxy extends LocalServer {
  /** Absolute-URI requests forwarded (`GET http://host/path HTTP/1.1`). */
  forwarded: number;
  /** CONNECT tunnels opened (undici's ProxyAgent tunnels even to http:// targets by default). */
  tunnels: number;
}

/** A minimal HTTP forward proxy: absolute-URI requests and CONNECT, counted. */
async function startForwardProxy(): Promise<ForwardProxy> {
  const tunnelSockets = new Set<Socket>();
  const counts = { forwarded: 0, tunnels: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (!(req.url ?? '').startsWith('http://')) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('forward proxy: absolute-URI requests only');
      return;
    }
    counts.forwarded++;
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    const upstream = httpRequest(req.url ?? '', { method: req.method ?? 'GET', headers, agent: false }, (up) => {
      const back = { ...up.headers };
      for (const hop of ['connection', 'keep-alive', 'transfer-encoding']) delete back[hop];
      res.writeHead(up.statusCode ?? 502, back);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    counts.tunnels++;
    const [host = '', port = ''] = (req.url ?? '').split(':');
    const upstream = netConnect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    tunnelSockets.add(client).add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const base = await listen(server, tunnelSockets);
  // Live counters (Object.assign would copy a getter's value once).
  return Object.defineProperties(base, {
    forwarded: { get: () => counts.forwarded, enumerable: true },
    tunnels: { get: () => counts.tunnels, enumerable: true },
  }) as ForwardProxy;
}

// ---------------------------------------------------------------------------
// 1. Same everything
// ---------------------------------------------------------------------------

describe('1. successful calls: the app sees exactly the same responses', () => {
  it('status, headers, body bytes, url/redirected/type, instanceof, bodyUsed, exit code: identical; one row per call', async (t) => {
    const encodings = ['gzip', 'br', 'deflate', ...(zstdAvailable ? ['zstd'] : [])];
    if (!zstdAvailable) t.diagnostic(`zstd not available on Node ${process.version}: not exercised`);
    const source = `
      const calls = [['json', '/v1/chat/completions', chat()], ['sse', '/v1/chat/completions', chat({ stream: true })]];
      for (const enc of ${JSON.stringify(encodings)}) {
        calls.push([enc + ' json', '/mock/' + enc + '/v1/chat/completions', chat()]);
        calls.push([enc + ' sse', '/mock/' + enc + '/v1/chat/completions', chat({ stream: true })]);
      }
      calls.push(['chunk=1 json (multi-byte characters split)', '/mock/chunk=1/v1/chat/completions', chat()]);
      calls.push(['chunk=1 sse (multi-byte characters split)', '/mock/chunk=1/v1/chat/completions', chat({ stream: true })]);
      calls.push(['crlf sse', '/mock/crlf/v1/chat/completions', chat({ stream: true })]);
      calls.push(['embeddings', '/v1/embeddings', { model: 'mistral-embed', input: ['a', 'b'] }]);
      calls.push(['embeddings, 3,000 inputs (a body read from its end)', '/v1/embeddings', { model: 'mistral-embed', input: Array.from({ length: 3000 }, (_, i) => 'text ' + i) }]);
      for (const [label, path, body] of calls) await show(label, await post(path, body));
      await show('GET /v1/models (not usage-bearing)', await fetch(MOCK + '/v1/models'));
      process.exitCode = 7;
    `;
    const { plain, inst } = await runBoth(t, { source });
    assert.equal(plain.result.code, 7, `uninstrumented app failed:\n${plain.result.stderr}`);
    assertAppUnaffected(plain, inst);
    assertSilent(inst);
    assert.equal(plain.rows, undefined, 'no log without the preload');
    assert.equal(inst.mock.served.length, 7 + 2 * encodings.length, 'every usage-bearing call was served with usage');
    assertRowsMatchServed(inst);
  });
});

// ---------------------------------------------------------------------------
// 2. Errors the app sees are the same
// ---------------------------------------------------------------------------

describe('2. failing calls: the app sees the same errors', () => {
  it('refused port, abort mid-stream, AbortSignal.timeout, 401/429/500: same output, no rows, no warnings', async (t) => {
    const refusedPortNumber = await refusedPort();
    const source = `
      try {
        await post('http://127.0.0.1:' + process.env.REFUSED_PORT + '/v1/chat/completions', chat());
        console.log('refused: no error?');
      } catch (error) {
        console.log('refused: ' + describeError(error));
      }

      const controller = new AbortController();
      const streaming = await post('/mock/hang/v1/chat/completions', chat({ stream: true }), { signal: controller.signal });
      const reader = streaming.body.getReader();
      for (let i = 0; i < 2; i++) await reader.read();
      controller.abort();
      try {
        await reader.read();
        console.log('abort: read after abort resolved?');
      } catch (error) {
        console.log('abort: ' + describeError(error) + ' bodyUsed=' + streaming.bodyUsed);
      }

      try {
        const hanging = await post('/mock/hang/v1/chat/completions', chat(), { signal: AbortSignal.timeout(300) });
        console.log('timeout: headers arrived, status ' + hanging.status);
        await hanging.text();
      } catch (error) {
        console.log('timeout: ' + describeError(error));
      }

      for (const status of [401, 429, 500]) await show('status ' + status, await post('/mock/status=' + status + '/v1/chat/completions', chat()));
    `;
    const { plain, inst } = await runBoth(t, {
      source,
      env: () => ({ REFUSED_PORT: String(refusedPortNumber) }),
      extraHosts: [`127.0.0.1:${refusedPortNumber}`],
    });
    assert.match(plain.stdout, /refused: .*ECONNREFUSED/);
    assert.match(plain.stdout, /abort: .*AbortError/);
    assert.match(plain.stdout, /timeout: .*TimeoutError/);
    assertAppUnaffected(plain, inst);
    assertSilent(inst);
    assert.deepEqual(inst.rows ?? [], [], 'no row for failed calls');
  });
});

/**
 * A port nothing listens on, and nothing will: taken below the kernel's ephemeral range
 * (32768-60999 on Linux), which `listen(0)` draws from. A port freed from `listen(0)` was
 * sometimes taken by another suite's server before the app connected, and "refused" succeeded.
 */
async function refusedPort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 10000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

// ---------------------------------------------------------------------------
// 3. Cancellation reaches the server as without us
// ---------------------------------------------------------------------------

describe('3. cancellation reaches the server as without the preload', () => {
  for (const mode of ['reader.cancel()', 'AbortController.abort()'] as const) {
    it(`${mode} after 3 chunks of a hanging stream`, async (t) => {
      const source = `
        const controller = new AbortController();
        // ~220 ms between chunks: a scheduling stall on a busy machine cannot change the count.
        const res = await post('/mock/hang,delay=200/v1/chat/completions', chat({ stream: true }), { signal: controller.signal });
        const reader = res.body.getReader();
        let chunks = 0;
        while (chunks < 3 && !(await reader.read()).done) chunks++;
        process.stderr.write('app: stop-at ' + Date.now() + '\\n');
        if (${JSON.stringify(mode)} === 'reader.cancel()') await reader.cancel();
        else {
          controller.abort();
          await reader.read().catch((error) => console.log('read after abort: ' + error.name));
        }
        console.log('read ' + chunks + ' chunks, then ${mode}');
        // Stay alive: a disconnect the server sees now came from the cancel, not from the exit.
        await sleep(1500);
        console.log('exit');
      `;
      const seen: Record<string, { at: number; exitedFirst: boolean }> = {};
      const spec = (label: string): RunSpec => ({
        source,
        during: async (mock, run) => {
          let exited = false;
          void run.then(() => (exited = true));
          await mock.waitForDisconnects(1, 10_000);
          seen[label] = { at: Date.now(), exitedFirst: exited };
        },
      });
      const plain = await runSide(t, spec('plain'), false);
      const inst = await runSide(t, spec('inst'), true);
      const stopAt = (side: Side) => Number(/^app: stop-at (\d+)$/m.exec(side.appStderr.join('\n'))?.[1]);
      const stops = { plain: stopAt(plain), inst: stopAt(inst) };
      for (const side of [plain, inst]) side.appStderr = side.appStderr.filter((l) => !l.startsWith('app: stop-at '));
      assertAppUnaffected(plain, inst);
      assertSilent(inst);
      assert.deepEqual(inst.rows ?? [], [], 'no row: the usage never arrived');

      const chunks = (side: Side) => side.mock.disconnects[0]?.chunksWritten ?? -1;
      const latency = (label: 'plain' | 'inst') => (seen[label]?.at ?? NaN) - stops[label];
      t.diagnostic(`chunks written before the disconnect: without ${chunks(plain)}, with ${chunks(inst)}`);
      t.diagnostic(`disconnect seen by the server after the app stopped: without ~${latency('plain')} ms, with ~${latency('inst')} ms`);
      assert.equal(seen['plain']?.exitedFirst, false, 'without the preload the server only saw the disconnect at exit');
      assert.equal(seen['inst']?.exitedFirst, false, 'with the preload the server only saw the disconnect at exit');
      // Had the cancel not reached the server, it would have written ~7 more chunks while the app lingered.
      assert.ok(chunks(plain) >= 3 && chunks(plain) <= 5, `unexpected baseline: ${chunks(plain)} chunks`);
      assert.ok(Math.abs(chunks(inst) - chunks(plain)) <= 2, `chunks written: ${chunks(inst)} with vs ${chunks(plain)} without`);
    });
  }
});

// ---------------------------------------------------------------------------
// 4. Backpressure: the body is not buffered behind the app's back
// ---------------------------------------------------------------------------

describe('4. backpressure and memory', () => {
  it('a ~4 MB stream left unread for 2 s is not pulled into memory', async (t) => {
    const source = `
      const res = await post('/mock/big=4000/v1/chat/completions', chat({ stream: true }));
      // Two collections with a turn in between: a single gc() leaves freed buffers behind at random.
      const settle = async () => { globalThis.gc(); await sleep(50); globalThis.gc(); };
      await sleep(2000);
      await settle();
      const paused = process.memoryUsage().arrayBuffers;
      let bytes = 0;
      for await (const chunk of res.body) bytes += chunk.byteLength;
      await settle();
      const done = process.memoryUsage().arrayBuffers;
      console.log('read ' + bytes + ' bytes');
      process.stderr.write('app-memory ' + JSON.stringify({ paused, done }) + '\\n');
    `;
    const { plain, inst } = await runBoth(t, { source, nodeArgs: ['--expose-gc'], timeoutMs: 60_000 }, true);
    const memory = (side: Side): { paused: number; done: number } => {
      const line = side.appStderr.find((l) => l.startsWith('app-memory '));
      assert.ok(line, `no memory report:\n${side.result.stderr}`);
      return JSON.parse(line.slice('app-memory '.length)) as { paused: number; done: number };
    };
    const [without, withUs] = [memory(plain), memory(inst)];
    const mb = (n: number) => `${(n / 1048576).toFixed(2)} MB`;
    t.diagnostic(`arrayBuffers after the 2 s pause: without ${mb(without.paused)}, with ${mb(withUs.paused)} (delta ${mb(withUs.paused - without.paused)})`);
    t.diagnostic(`arrayBuffers after reading it all (informational): without ${mb(without.done)}, with ${mb(withUs.done)}`);
    // Compare stdout etc. without the memory lines.
    for (const side of [plain, inst]) side.appStderr = side.appStderr.filter((l) => !l.startsWith('app-memory '));
    assertAppUnaffected(plain, inst);
    assert.match(plain.stdout, /read \d{7} bytes/);
    assertSilent(inst);
    assertRowsMatchServed(inst);
    assert.equal(inst.rows?.length, 1);
    assert.ok(withUs.paused - without.paused < 1.5 * 1048576, 'the preload buffered the unread body');
  });
});

// ---------------------------------------------------------------------------
// 5. Time to first chunk
// ---------------------------------------------------------------------------

describe('5. time to first chunk', () => {
  it('is not asserted', { skip: 'timing is not asserted on shared CI machines (by design of this suite)' }, () => {});
});

// ---------------------------------------------------------------------------
// 6. Bad input: one clear line, no row, nothing lost
// ---------------------------------------------------------------------------

interface BadInput {
  name: string;
  /** A mock path, or `odd:<path>` for the local odd server. */
  path: string;
  body: Record<string, unknown>;
  /** Our one warning line is expected (otherwise: silence). */
  warns: boolean;
  /** The bad call still yields a row (sniffed content type). */
  logged?: boolean;
  todo?: string;
}

const CHAT = { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] };
const CHAT_STREAM = { ...CHAT, stream: true };
const BAD_INPUTS: BadInput[] = [
  { name: 'malformed JSON', path: '/mock/malformed/v1/chat/completions', body: CHAT, warns: true },
  { name: 'malformed SSE', path: '/mock/malformed/v1/chat/completions', body: CHAT_STREAM, warns: true },
  { name: 'truncated JSON', path: '/mock/truncated/v1/chat/completions', body: CHAT, warns: true },
  { name: 'truncated SSE', path: '/mock/truncated/v1/chat/completions', body: CHAT_STREAM, warns: true },
  { name: 'nousage chat JSON (chat always reports usage)', path: '/mock/nousage/v1/chat/completions', body: CHAT, warns: true },
  { name: 'nousage chat SSE', path: '/mock/nousage/v1/chat/completions', body: CHAT_STREAM, warns: true },
  { name: 'gzip + truncated SSE', path: '/mock/gzip,truncated/v1/chat/completions', body: CHAT_STREAM, warns: true },
  { name: 'br + malformed SSE', path: '/mock/br,malformed/v1/chat/completions', body: CHAT_STREAM, warns: true },
  { name: 'deflate + nousage JSON', path: '/mock/deflate,nousage/v1/chat/completions', body: CHAT, warns: true },
  { name: 'nousage moderations (usage optional: silent)', path: '/mock/nousage/v1/moderations', body: { model: 'mistral-moderation-latest', input: ['hi'] }, warns: false },
  { name: 'corrupt gzip JSON', path: 'odd:/corrupt-gzip/v1/chat/completions', body: CHAT, warns: true },
  { name: 'corrupt gzip SSE', path: 'odd:/corrupt-gzip/v1/chat/completions', body: CHAT_STREAM, warns: true },
  { name: 'unknown content-encoding "compress"', path: 'odd:/compress/v1/chat/completions', body: CHAT, warns: true },
  { name: 'no content-type, JSON (sniffed: logged)', path: '/mock/nocontenttype/v1/chat/completions', body: CHAT, warns: false, logged: true },
  { name: 'no content-type, SSE (sniffed: logged)', path: '/mock/nocontenttype/v1/chat/completions', body: CHAT_STREAM, warns: false, logged: true },
  { name: '2xx with an empty JSON body', path: 'odd:/empty/v1/chat/completions', body: CHAT, warns: true },
  { name: '2xx with an empty SSE body', path: 'odd:/empty/v1/chat/completions', body: CHAT_STREAM, warns: true },
];

describe('6. bad input: at most one clear stderr line, no row, the app unaffected', () => {
  let odd: LocalServer;
  before(async () => {
    odd = await startOddServer();
  });
  after(() => odd.close());

  for (const bad of BAD_INPUTS) {
    const options = bad.todo === undefined ? {} : { todo: bad.todo };
    it(bad.name, options, async (t) => {
      const onOdd = bad.path.startsWith('odd:');
      const path = onOdd ? bad.path.slice('odd:'.length) : bad.path;
      const source = `
        const bad = await post(process.env.BAD_URL, ${JSON.stringify(bad.body)});
        await show('bad call', bad);
        await show('good call afterwards', await post('/v1/chat/completions', chat()));
      `;
      const { plain, inst } = await runBoth(t, {
        source,
        env: (mock) => ({ BAD_URL: (onOdd ? odd.url : mock.url) + path }),
        extraHosts: [odd.hostPort],
        servers: { odd },
      });
      assertAppUnaffected(plain, inst);
      assert.match(plain.stdout, /== good call afterwards\nstatus 200/);
      // Rows: exactly what the mock served with usage: the good call, and the bad one only if sniffed.
      assertRowsMatchServed(inst);
      assert.equal(inst.rows?.length, bad.logged === true ? 2 : 1, 'rows for the bad call and the good one');
      if (bad.warns) {
        assert.equal(inst.ours.length, 1, `expected exactly one line from us, got:\n${inst.ours.join('\n')}`);
        const line = inst.ours[0] ?? '';
        assert.ok(line.includes('POST') && line.includes(path), `the line names the request (POST ${path}): ${line}`);
        t.diagnostic(line);
      } else {
        assertSilent(inst);
      }
    });
  }
});

// ---------------------------------------------------------------------------
// 7. Configuration
// ---------------------------------------------------------------------------

describe('7. configuration from the environment', () => {
  const twoCalls = `
    await show('json', await post('/v1/chat/completions', chat()));
    await show('sse', await post('/v1/chat/completions', chat({ stream: true })));
  `;

  it('MISTRAL_USAGE_DISABLE=1: no file, no rows, no stderr', async (t) => {
    const { plain, inst } = await runBoth(t, { source: twoCalls, env: () => ({ MISTRAL_USAGE_DISABLE: '1' }) });
    assertAppUnaffected(plain, inst);
    assertSilent(inst);
    assert.equal(existsSync(inst.logPath), false, 'no log file when disabled');
    assert.equal(inst.result.stderr, plain.result.stderr);
  });

  it('MISTRAL_USAGE_VERBOSE=1: each row echoed to stderr, stdout unchanged', async (t) => {
    const { plain, inst } = await runBoth(t, { source: twoCalls, env: () => ({ MISTRAL_USAGE_VERBOSE: '1' }) });
    assertAppUnaffected(plain, inst);
    assertRowsMatchServed(inst);
    const expected = inst.mock.served.flatMap((s) => [
      `${OUR_PREFIX}Model: ${s.model}, Prompt Tokens: ${s.promptTokens}, Completion Tokens: ${s.completionTokens}, Total Tokens: ${s.totalTokens}`,
      `${OUR_PREFIX}Logged usage to ${inst.logPath}`,
    ]);
    assert.equal(expected.length, 4);
    assert.deepEqual(inst.ours, expected);
  });

  it('MISTRAL_USAGE_VERBOSE=maybe: one warning, default (quiet) used, rows still logged', async (t) => {
    const { plain, inst } = await runBoth(t, { source: twoCalls, env: () => ({ MISTRAL_USAGE_VERBOSE: 'maybe' }) });
    assertAppUnaffected(plain, inst);
    assertRowsMatchServed(inst);
    assert.equal(inst.ours.length, 1, inst.ours.join('\n'));
    assert.match(inst.ours[0] ?? '', /MISTRAL_USAGE_VERBOSE.*maybe/);
  });

  it('MISTRAL_USAGE_HOSTS="a b,::1:99999,<mock>": one warning per bad entry, the good entry still used', async (t) => {
    const { plain, inst } = await runBoth(t, { source: twoCalls, env: (mock) => ({ MISTRAL_USAGE_HOSTS: `a b,::1:99999,${mock.hostPort}` }) });
    assertAppUnaffected(plain, inst);
    assertRowsMatchServed(inst);
    assert.equal(inst.ours.length, 2, inst.ours.join('\n'));
    assert.ok(inst.ours.some((l) => l.includes('MISTRAL_USAGE_HOSTS') && l.includes('"a b"')), inst.ours.join('\n'));
    assert.ok(inst.ours.some((l) => l.includes('MISTRAL_USAGE_HOSTS') && l.includes('"::1:99999"')), inst.ours.join('\n'));
  });

  it('MISTRAL_USAGE_HOSTS="a b,::1:99999" only: two warnings, default hosts (the mock is not logged)', async (t) => {
    const { plain, inst } = await runBoth(t, { source: twoCalls, env: () => ({ MISTRAL_USAGE_HOSTS: 'a b,::1:99999' }) });
    assertAppUnaffected(plain, inst);
    assert.equal(inst.ours.length, 2, inst.ours.join('\n'));
    assert.deepEqual(inst.rows ?? [], []);
  });

  /** A second copy of the built package in a temp dir, its dependencies through a node_modules link. */
  async function packageCopy(t: TestContext): Promise<string> {
    const copy = await tempDirFor(t);
    await cp(join(repoRoot, 'dist'), join(copy, 'dist'), { recursive: true });
    await cp(join(repoRoot, 'register.js'), join(copy, 'register.js'));
    await cp(join(repoRoot, 'package.json'), join(copy, 'package.json'));
    await linkNodeModules(copy);
    return pathToFileURL(join(copy, 'register.js')).href;
  }

  const twice: { name: string; spec: (t: TestContext) => Promise<Partial<RunSpec>> }[] = [
    { name: '--import X --import X', spec: async () => ({ nodeArgs: ['--import', registerUrl] }) },
    { name: 'NODE_OPTIONS=--import X plus --import X', spec: async () => ({ env: () => ({ NODE_OPTIONS: `--import ${registerUrl}` }) }) },
    { name: '--import X plus --import <a second copy of the package>', spec: async (t) => ({ nodeArgs: ['--import', await packageCopy(t)] }) },
  ];
  for (const variant of twice) {
    it(`preload loaded twice (${variant.name}): still one row per call`, async (t) => {
      const { plain, inst } = await runBoth(t, { source: twoCalls, ...(await variant.spec(t)) });
      assertAppUnaffected(plain, inst);
      assertSilent(inst);
      assert.equal(inst.rows?.length, 2);
      assertRowsMatchServed(inst);
    });
  }
});

// ---------------------------------------------------------------------------
// 8. Proxies stay in charge
// ---------------------------------------------------------------------------

describe('8. the app\'s proxy still carries the calls, and they are logged', () => {
  /** Does this Node's fetch honour NODE_USE_ENV_PROXY? Asked of the runtime, not guessed. */
  async function envProxySupported(): Promise<{ supported: boolean; how: string }> {
    const proxy = await startForwardProxy();
    const mock = await startMockMistral();
    const dir = await tempDir();
    try {
      const result = await runNode(['-e', `fetch(${JSON.stringify(`${mock.url}/v1/models`)}).then((r) => r.text()).then(() => process.exit(0), () => process.exit(3))`], {
        cwd: dir,
        env: { NODE_USE_ENV_PROXY: '1', HTTP_PROXY: proxy.url, http_proxy: undefined, NO_PROXY: undefined, no_proxy: undefined },
      });
      const used = proxy.forwarded + proxy.tunnels;
      return { supported: result.code === 0 && used > 0, how: `exit ${result.code}, proxy saw ${proxy.forwarded} forwarded + ${proxy.tunnels} tunnels` };
    } finally {
      await Promise.all([proxy.close(), mock.close(), rm(dir, { recursive: true, force: true })]);
    }
  }

  async function runProxied(t: TestContext, source: string, env: (proxyUrl: string) => Record<string, string | undefined>) {
    const proxies: ForwardProxy[] = [];
    const side = async (preload: boolean): Promise<Side> => {
      const proxy = await startForwardProxy();
      proxies.push(proxy);
      try {
        return await runSide(t, { source, env: () => env(proxy.url), servers: { proxy } }, preload);
      } finally {
        await proxy.close();
      }
    };
    const plain = await side(false);
    const inst = await side(true);
    const [p0, p1] = proxies as [ForwardProxy, ForwardProxy];
    t.diagnostic(`proxy without preload: ${p0.forwarded} forwarded, ${p0.tunnels} tunnels; with: ${p1.forwarded} forwarded, ${p1.tunnels} tunnels`);
    assertAppUnaffected(plain, inst);
    assertSilent(inst);
    assert.ok(p0.forwarded + p0.tunnels > 0, 'without the preload the call went through the proxy');
    assert.ok(p1.forwarded + p1.tunnels > 0, 'with the preload the call still went through the proxy');
    assert.equal(p1.forwarded + p1.tunnels, p0.forwarded + p0.tunnels);
    assert.equal(inst.rows?.length, 2);
    assertRowsMatchServed(inst);
  }

  const noProxyEnv = { http_proxy: undefined, HTTPS_PROXY: undefined, https_proxy: undefined, NO_PROXY: undefined, no_proxy: undefined };

  it('NODE_USE_ENV_PROXY=1 with HTTP_PROXY: built-in fetch goes through the proxy, with and without the preload', async (t) => {
    const probe = await envProxySupported();
    if (!probe.supported) {
      t.skip(`Node ${process.version} fetch does not honour NODE_USE_ENV_PROXY (probe: ${probe.how})`);
      return;
    }
    t.diagnostic(`probe: ${probe.how}`);
    const source = `
      await show('json via env proxy', await post('/v1/chat/completions', chat()));
      await show('sse via env proxy', await post('/v1/chat/completions', chat({ stream: true })));
    `;
    await runProxied(t, source, (proxyUrl) => ({ ...noProxyEnv, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: proxyUrl }));
  });

  for (const mode of ['tunnel', 'forward'] as const) {
    it(`npm undici fetch with { dispatcher: new ProxyAgent(${mode === 'tunnel' ? 'proxyUrl' : '{ uri, proxyTunnel: false }'}) }`, async (t) => {
      const source = `
        const { fetch: undiciFetch, ProxyAgent } = await import('undici');
        const dispatcher = new ProxyAgent(${mode === 'tunnel' ? 'process.env.APP_PROXY' : '{ uri: process.env.APP_PROXY, proxyTunnel: false }'});
        const call = (body) => undiciFetch(MOCK + '/v1/chat/completions', {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), dispatcher,
        });
        await show('json via ProxyAgent', await call(chat()));
        await show('sse via ProxyAgent', await call(chat({ stream: true })));
        await dispatcher.close();
      `;
      await runProxied(t, source, (proxyUrl) => ({ ...noProxyEnv, APP_PROXY: proxyUrl }));
    });
  }
});

// ---------------------------------------------------------------------------
// 9. Our faults never reach the app
// ---------------------------------------------------------------------------

describe('9. under --unhandled-rejections=strict, a mix of everything adds no warning', () => {
  it('bad bodies, aborts, cancels, errors and good calls in one app', async (t) => {
    const source = `
      const paths = ['/mock/malformed/v1/chat/completions', '/mock/truncated/v1/chat/completions', '/mock/nousage/v1/chat/completions',
        '/mock/gzip,truncated/v1/chat/completions', '/mock/br,malformed/v1/chat/completions', '/mock/status=500/v1/chat/completions',
        '/mock/nocontenttype,gzip/v1/chat/completions', '/v1/chat/completions'];
      for (const path of paths) {
        for (const stream of [false, true]) await show(path + ' stream=' + stream, await post(path, chat({ stream })));
      }
      // A compressed stream cancelled half-way, and one left open at exit.
      const cancelled = await post('/mock/gzip,hang/v1/chat/completions', chat({ stream: true }));
      const reader = cancelled.body.getReader();
      await reader.read();
      await reader.cancel();
      const open = await post('/mock/deflate,hang/v1/chat/completions', chat({ stream: true }));
      await open.body.getReader().read();
      console.log('leaving one stream open');
      process.exit(0);
    `;
    const { plain, inst } = await runBoth(t, { source, nodeArgs: ['--throw-deprecation'] });
    assertAppUnaffected(plain, inst);
    assertRowsMatchServed(inst);
    for (const line of inst.ours) t.diagnostic(line);
    assert.ok(inst.ours.every((line) => /POST http:\/\/<mock>\/\S+: /.test(line)), `every line of ours names a request:\n${inst.ours.join('\n')}`);
  });
});

// ---------------------------------------------------------------------------
// 10. Start-up: nothing loaded that the app did not ask for
// ---------------------------------------------------------------------------

describe('10. start-up', () => {
  it('the preload loads no Node module beyond diagnostics_channel (node:fs, zlib, stream, worker_threads and perf_hooks wait for first use)', async (t) => {
    // An ES module import of node:fs (or node:worker_threads) loads all of node:stream, and node:zlib
    // and the global `performance` load more: 3 to 7 ms added to every process started under the
    // preload, most of which never make a Mistral call.
    const dir = await tempDirFor(t);
    const print = 'console.log(process.moduleLoadList.join("\\n"))';
    const loaded = async (preload: string[]) => {
      const result = await runNode([...preload, '-e', print], { cwd: dir, env: { MISTRAL_USAGE_LOG: join(dir, 'usage.csv') } });
      assert.equal(result.code, 0, result.stderr);
      return new Set(result.stdout.trim().split('\n'));
    };
    const empty = join(dir, 'empty.mjs');
    await writeFile(empty, '');
    const without = await loaded(['--import', pathToFileURL(empty).href]);
    const withPreload = await loaded(["--import", registerUrl]);
    const added = [...withPreload].filter((name) => !without.has(name));
    assert.deepEqual(added.filter((name) => name !== 'NativeModule diagnostics_channel'), []);
  });
});
