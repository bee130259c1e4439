/**
 * End-to-end tests of the node:http2 tap (src/taps/node-http2.ts): HTTP/2 clients run as child
 * processes against the mock in its HTTP/2-over-TLS mode, without and with the preload.
 *
 * Each app runs twice, each time against a fresh mock (responses are numbered from 1 again, so both
 * runs receive the same bytes): the app must print the same thing and exit the same way with the
 * preload, print no line of ours on stderr, and leave one CSV row per usage-bearing response the
 * mock served to the instrumented run. The mock records the HTTP version of every request, so each
 * case also proves that HTTP/2 was really used.
 *
 * Node 20 publishes no `http2.client.stream.*` channels: there the same apps get no row (the
 * limitation is in the README), and that is what these tests check on Node 20.
 *
 * Requires `npm run build` (the children load the built register.js).
 */
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startMockMistral } from './support/mock-mistral.js';
import type { MockMistral, ServedResponse } from './support/mock-mistral.js';
import { OUR_PREFIX, readLogRows, rowTail, runApp, tempDirFor } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';
import { opensslAvailable } from './support/tls.js';

const nodeMajor = Number(process.versions.node.split('.')[0]);
/** Node 22 added the http2 client channels; Node 20 has none. */
const observed = nodeMajor >= 22;
const skip = opensslAvailable ? false : 'openssl is not installed: cannot make the mock its TLS certificate';

/** Prepended to every app: helpers over the mock's base URL (`MOCK_URL`, https). */
const PRELUDE = String.raw`
const MOCK = process.env.MOCK_URL;
const chat = (extra = {}) => ({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'Bonjour 🙂' }], ...extra });
const at = (flags, path = '/v1/chat/completions') => MOCK + (flags ? '/mock/' + flags : '') + path;
/** The text of an event stream's content deltas, and whether it carried usage. */
function contentOf(sse) {
  let text = '';
  let usage = false;
  for (const line of sse.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const event = JSON.parse(line.slice(6));
    text += event.choices?.[0]?.delta?.content ?? '';
    usage ||= event.usage !== undefined;
  }
  return text + (usage ? ' (usage)' : '');
}
`;

interface Side {
  result: RunResult;
  rows: string[][] | undefined;
  served: ServedResponse[];
  mock: MockMistral;
}

async function runSide(t: TestContext, source: string, preload: boolean, mode: true | 'h2c'): Promise<Side> {
  const dir = await tempDirFor(t, 'mistral-usage-http2-');
  const mock = await startMockMistral({ http2: mode });
  try {
    const log = join(dir, 'usage.csv');
    const result = await runApp({
      cwd: dir,
      source: PRELUDE + source,
      preload,
      nodeArgs: ['--trace-warnings', '--unhandled-rejections=strict'],
      env: {
        MOCK_URL: mock.url,
        NODE_EXTRA_CA_CERTS: mock.caFile,
        MISTRAL_USAGE_HOSTS: mock.hostPort,
        MISTRAL_USAGE_LOG: log,
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { result, rows: existsSync(log) ? await readLogRows(log) : undefined, served: [...mock.served], mock };
  } finally {
    await mock.close();
  }
}

/** Runs the app without and with the preload; returns the instrumented side after the common checks. */
async function runBoth(t: TestContext, source: string, calls: number, mode: true | 'h2c' = true): Promise<Side> {
  const plain = await runSide(t, source, false, mode);
  assert.equal(plain.result.code, 0, plain.result.stderr);
  assert.equal(plain.rows, undefined);
  const inst = await runSide(t, source, true, mode);
  assert.equal(inst.result.code, 0, inst.result.stderr);
  assert.equal(inst.result.stdout, plain.result.stdout.replaceAll(plain.mock.hostPort, inst.mock.hostPort), 'the app printed the same');
  const ours = inst.result.stderr.split('\n').filter((line) => line.startsWith(OUR_PREFIX));
  assert.deepEqual(ours, [], inst.result.stderr);
  assert.equal(inst.result.stderr, plain.result.stderr, 'stderr unchanged');
  assert.equal(inst.served.length, calls, `the mock served ${calls} usage-bearing responses`);
  const posts = inst.mock.requests.filter((r) => r.method === 'POST');
  assert.ok(posts.length > 0 && posts.every((r) => r.httpVersion === '2.0'), `HTTP/2 was used: ${posts.map((r) => r.httpVersion).join(', ')}`);
  const expected = observed ? inst.served.map(rowTail).sort() : [];
  const actual = (inst.rows ?? []).map((row) => row.slice(1).join(',')).sort();
  assert.deepEqual(actual, expected, observed ? 'one row per usage-bearing response' : 'Node 20 has no http2 channels: no row');
  return inst;
}

describe('HTTP/2 clients', { skip, concurrency: 2 }, () => {
  it('node:http2 by hand: JSON and streams, identity, gzip, br and deflate', async (t) => {
    const source = String.raw`
import http2 from 'node:http2';
import zlib from 'node:zlib';
const session = http2.connect(MOCK);
function h2post(url, body) {
  const { pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': pathname, 'content-type': 'application/json', 'accept-encoding': 'gzip, deflate, br' });
    let head = {};
    const chunks = [];
    stream.on('response', (headers) => (head = headers));
    stream.on('data', (chunk) => chunks.push(chunk));
    stream.on('end', () => {
      const raw = Buffer.concat(chunks);
      const encoding = head['content-encoding'];
      const body = encoding === 'gzip' ? zlib.gunzipSync(raw) : encoding === 'br' ? zlib.brotliDecompressSync(raw) : encoding === 'deflate' ? zlib.inflateSync(raw) : raw;
      resolve(head[':status'] + ' ' + head['content-type'] + ' ' + (encoding ?? 'identity') + ' ' + body.toString('utf8').length);
    });
    stream.on('error', reject);
    stream.end(JSON.stringify(body));
  });
}
for (const flags of ['', 'gzip', 'br', 'deflate']) {
  console.log('json ' + flags + ': ' + (await h2post(at(flags), chat())));
  console.log('sse ' + flags + ': ' + (await h2post(at(flags), chat({ stream: true }))));
}
console.log('embeddings: ' + (await h2post(at('', '/v1/embeddings'), { model: 'mistral-embed', input: ['a'] })));
console.log('models: ' + (await new Promise((resolve) => { const s = session.request({ ':path': '/v1/models' }); s.on('response', (h) => resolve(h[':status'])); s.resume(); })));
session.close();
`;
    await runBoth(t, source, 9);
  });

  it('node:http2 over cleartext (h2c, http://): JSON and a stream', async (t) => {
    const source = String.raw`
import http2 from 'node:http2';
const session = http2.connect(MOCK);
const h2post = (body) => new Promise((resolve, reject) => {
  const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json' });
  const chunks = [];
  stream.on('data', (chunk) => chunks.push(chunk));
  stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  stream.on('error', reject);
  stream.end(JSON.stringify(body));
});
console.log('h2c json: ' + JSON.parse(await h2post(chat())).choices[0].message.content);
console.log('h2c sse: ' + contentOf(await h2post(chat({ stream: true }))));
session.close();
`;
    await runBoth(t, source, 2, 'h2c');
  });

  it('got with http2: true: JSON, a gzip JSON and a streamed reply', async (t) => {
    const source = String.raw`
import got from 'got';
const json = await got.post(at(''), { json: chat(), http2: true }).json();
console.log('got json: ' + json.choices[0].message.content);
const gz = await got.post(at('gzip'), { json: chat(), http2: true }).json();
console.log('got gzip json: ' + gz.choices[0].message.content);
const sse = await got.post(at('gzip'), { json: chat({ stream: true }), http2: true }).text();
console.log('got sse: ' + contentOf(sse));
`;
    await runBoth(t, source, 3);
  });

  it('superagent().http2(): JSON and a br stream', async (t) => {
    const source = String.raw`
import superagent from 'superagent';
const json = await superagent.post(at('')).http2().send(chat());
console.log('superagent json: ' + json.status + ' ' + json.body.choices[0].message.content);
const sse = await superagent.post(at('br')).http2().send(chat({ stream: true })).buffer(true).parse((res, done) => {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (chunk) => (text += chunk));
  res.on('end', () => done(null, text));
});
console.log('superagent sse: ' + contentOf(sse.body));
`;
    await runBoth(t, source, 2);
  });

  it('speech streamed over HTTP/2 names no model: the request body gives it', async (t) => {
    const source = String.raw`
import http2 from 'node:http2';
const session = http2.connect(MOCK);
const stream = session.request({ ':method': 'POST', ':path': '/v1/audio/speech', 'content-type': 'application/json' });
let size = 0;
stream.on('data', (chunk) => (size += chunk.length));
stream.write(JSON.stringify({ model: 'voxtral-mini-tts-latest', input: 'Bonjour', stream: true }).slice(0, 20));
stream.end(JSON.stringify({ model: 'voxtral-mini-tts-latest', input: 'Bonjour', stream: true }).slice(20));
await new Promise((resolve) => stream.on('end', resolve));
console.log('speech: ' + (size > 0));
session.close();
`;
    const inst = await runBoth(t, source, 1);
    if (observed) assert.equal(inst.rows?.[0]?.[1], 'voxtral-mini-tts-latest');
  });

  it('a stream the app closes before its usage: no row, no warning; the server saw the cancel', async (t) => {
    const source = String.raw`
import http2 from 'node:http2';
const session = http2.connect(MOCK);
const stream = session.request({ ':method': 'POST', ':path': '/mock/hang/v1/chat/completions', 'content-type': 'application/json' });
stream.end(JSON.stringify(chat({ stream: true })));
await new Promise((resolve) => stream.once('data', resolve));
stream.close(http2.constants.NGHTTP2_CANCEL);
await new Promise((resolve) => stream.on('close', resolve));
console.log('closed: ' + stream.rstCode);
session.close();
`;
    const inst = await runBoth(t, source, 0);
    assert.deepEqual(inst.rows ?? [], []);
  });
});
