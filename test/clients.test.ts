/**
 * End-to-end tests: real apps (plain fetch, npm undici, the Mistral / openai / Vercel AI SDKs,
 * workers and child processes) run as child processes under the preload against the loopback
 * mock, and the CSV they leave behind is checked against what the mock served.
 *
 * Every scenario runs its app twice:
 *   1. without the preload, the baseline: it must exit 0 and create no CSV;
 *   2. with the preload: same stdout byte for byte, no "mistral-usage-log:" line on stderr, and
 *      exactly one CSV row per usage-bearing response the mock served to THAT run (matched as a
 *      multiset on model + the three counts, which the mock makes unique per response).
 *
 * Attribution: each group has its own mock and runs its tests one at a time, so the mock's
 * `served` entries added during the instrumented run are exactly that run's. Groups run two at a
 * time (2 cores).
 *
 * Apps print what they receive, with the per-response parts masked (ids carry a response counter,
 * usage numbers are unique per response), so both runs print the same thing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startMockMistral } from './support/mock-mistral.js';
import type { MockMistral, ServedResponse } from './support/mock-mistral.js';
import { readLogRows, registerPath, runApp, tempDir } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';

const LOG_NAME = 'mistral_usage_log.csv';

const [nodeMajor = 0, nodeMinor = 0] = process.versions.node.split('.').map(Number);
/** npm undici 8 declares engines node >= 22.19. */
const undici8Skip = nodeMajor > 22 || (nodeMajor === 22 && nodeMinor >= 19) ? false : `undici 8 needs Node >= 22.19 (this is ${process.versions.node})`;

// ---------------------------------------------------------------------------
// What every app starts with
// ---------------------------------------------------------------------------

/**
 * Prepended to every app. `show` prints a value with its per-response parts masked: the 6-digit
 * response counter in ids and whole `usage` objects (SDKs included: their `usage` key survives
 * camel-casing). `call` POSTs through the GLOBAL fetch and prints status, content type and body.
 */
const PRELUDE = String.raw`
const BASE = process.env.MOCK_BASE;
const mask = (text) => String(text)
  .replace(/"usage":\{(?:[^{}]|\{[^{}]*\})*\}/g, '"usage":"<masked>"')
  .replace(/\d{6}/g, '<n>');
const show = (label, value) => console.log(label + ': ' + mask(typeof value === 'string' ? value : JSON.stringify(value)));
const chatBody = (extra = {}) => ({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'Bonjour?' }], ...extra });
const jsonInit = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
async function call(label, path, body) {
  const init = body instanceof FormData ? { method: 'POST', body } : jsonInit(body);
  const res = await fetch(BASE + path, init);
  show(label, res.status + ' ' + res.headers.get('content-type') + ' ' + (await res.text()));
}
`;

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

type Env = Record<string, string | undefined>;

interface Scenario {
  /** The app (PRELUDE is prepended). */
  source: string;
  /** Usage-bearing responses the mock must serve to the instrumented run; 'any' lets the served list decide. */
  calls: number | 'any';
  /** false: the CSV must get no row at all even though the mock served usage (host not configured). */
  logged?: boolean;
  /** How the instrumented run loads the preload: `--import`, or `NODE_OPTIONS=--import=...` only. */
  via?: 'import' | 'node-options';
  /** Extra files written next to app.mjs in each run's directory. */
  files?: Record<string, string>;
  /** MISTRAL_USAGE_LOG as given to the app (default: absolute path in its cwd). */
  logEnv?: string;
  /** MOCK_BASE for the app (default: mock.url); MISTRAL_USAGE_HOSTS is always mock.hostPort. */
  base?: string;
  /** More checks on the instrumented run's directory, before it is removed. */
  inspect?: (cwd: string) => Promise<void>;
}

interface Outcome {
  /** What the mock served to the instrumented run. */
  served: ServedResponse[];
}

const rowKey = (model: string, prompt: number | string, completion: number | string, total: number | string): string =>
  `${model} | ${prompt} | ${completion} | ${total}`;

const servedKey = (s: ServedResponse): string => rowKey(s.model, s.promptTokens, s.completionTokens, s.totalTokens);

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The CSV's data rows, format checked; [] when no file was created. */
async function csvRows(path: string): Promise<string[][]> {
  return (await exists(path)) ? readLogRows(path) : [];
}

/** Waits until the mock has recorded `count` entries after `from` (it records when the write completes). */
async function settle(mock: MockMistral, from: number, count: number | 'any'): Promise<void> {
  const deadline = Date.now() + 2000;
  const target = count === 'any' ? 0 : count;
  while (mock.served.length - from < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // A late extra entry (more calls than expected, or a cut stream the mock has not noticed yet:
  // the 'any' scenarios space their events 50 ms apart) must show up here, not in the next slice.
  await new Promise((r) => setTimeout(r, count === 'any' ? 150 : 50));
}

function describeRun(label: string, run: RunResult): string {
  return `${label} run: code ${run.code} signal ${run.signal}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

/** Runs the app without and with the preload and makes every check common to all scenarios. */
async function runScenario(mock: MockMistral, scenario: Scenario): Promise<Outcome> {
  const root = await tempDir('mistral-usage-e2e-');
  try {
    const prepare = async (name: string): Promise<{ cwd: string; env: Env }> => {
      const cwd = join(root, name);
      await mkdir(cwd, { recursive: true });
      for (const [file, text] of Object.entries(scenario.files ?? {})) {
        await mkdir(dirname(join(cwd, file)), { recursive: true });
        await writeFile(join(cwd, file), text);
      }
      const env: Env = {
        MOCK_BASE: scenario.base ?? mock.url,
        MISTRAL_USAGE_HOSTS: mock.hostPort,
        MISTRAL_USAGE_LOG: scenario.logEnv ?? join(cwd, LOG_NAME),
      };
      return { cwd, env };
    };
    const source = `${PRELUDE}\n${scenario.source}`;

    // Baseline: no preload anywhere (NODE_OPTIONS is scrubbed by runApp's childEnv).
    const plainRun = await prepare('plain');
    const plainFrom = mock.served.length;
    const plain = await runApp({ cwd: plainRun.cwd, source, preload: false, env: plainRun.env, timeoutMs: 20_000 });
    assert.equal(plain.code, 0, describeRun('uninstrumented', plain));
    assert.equal(await exists(join(plainRun.cwd, LOG_NAME)), false, 'the baseline run is really uninstrumented');
    // The mock records a cut stream only once its next write fails, possibly after the app has
    // exited: let the baseline's entries land before the instrumented run's slice starts.
    await settle(mock, plainFrom, scenario.calls);
    if (scenario.calls !== 'any') assert.equal(mock.served.length - plainFrom, scenario.calls, 'the baseline made the expected calls');

    const run = await prepare('run');
    const viaNodeOptions = scenario.via === 'node-options';
    if (viaNodeOptions) run.env['NODE_OPTIONS'] = `--import=${registerPath}`;
    const from = mock.served.length;
    const instrumented = await runApp({ cwd: run.cwd, source, preload: !viaNodeOptions, env: run.env, timeoutMs: 20_000 });
    assert.equal(instrumented.code, 0, describeRun('instrumented', instrumented));
    await settle(mock, from, scenario.calls);
    const served = mock.served.slice(from);

    assert.equal(instrumented.stdout, plain.stdout, 'the preload does not change what the app sees');
    assert.doesNotMatch(instrumented.stderr, /mistral-usage-log:/, 'no warning for successful calls');
    if (scenario.calls !== 'any') {
      assert.equal(served.length, scenario.calls, `the app made the expected calls:\n${served.map(servedKey).join('\n')}`);
    }

    const rows = await csvRows(join(run.cwd, LOG_NAME));
    const expected = scenario.logged === false ? [] : served.map(servedKey).sort();
    const actual = rows.map(([, model = '', p = '', c = '', t = '']) => rowKey(model, p, c, t)).sort();
    assert.deepEqual(actual, expected, `one row per served response (paths: ${served.map((s) => s.path).join(', ') || 'none'})`);
    await scenario.inspect?.(run.cwd);
    return { served };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** One mock per group; the group's tests run one at a time so `served` can be attributed. */
function group(name: string, body: (mock: () => MockMistral) => void): void {
  describe(name, { concurrency: 1 }, () => {
    let mock: MockMistral | undefined;
    before(async () => {
      mock = await startMockMistral();
    });
    after(() => mock?.close());
    body(() => {
      assert.ok(mock, 'mock started');
      return mock;
    });
  });
}

/** `/mock/<flags>` path prefix for a response encoding ('' for identity). */
const flagged = (flags: string): string => (flags === '' ? '' : `/mock/${flags}`);

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe('clients under the preload (end to end)', { concurrency: 2 }, () => {
  // -------------------------------------------------------------------------
  // 1. Node's global fetch, called every way an app can.
  // -------------------------------------------------------------------------
  group('1. global fetch', (mock) => {
    const forms: Record<string, { setup: string; call: string }> = {
      'fetch(url, init)': { setup: '', call: 'fetch(url, init)' },
      'fetch(new Request(url, init))': { setup: '', call: 'fetch(new Request(url, init))' },
      // The app's own Agent: a dispatcher-level hook would never see these requests.
      'fetch(url, { dispatcher: new Agent() })': {
        setup: "import { Agent } from 'undici';\nconst agent = new Agent();",
        call: 'fetch(url, { ...init, dispatcher: agent })',
      },
      // Replaces the global dispatcher after the preload started (and after a first fetch).
      'setGlobalDispatcher(new Agent()) after start': {
        setup: "import { Agent, setGlobalDispatcher } from 'undici';\nawait call('warm-up', '/v1/chat/completions', chatBody());\nsetGlobalDispatcher(new Agent());",
        call: 'fetch(url, init)',
      },
    };
    for (const [form, { setup, call }] of Object.entries(forms)) {
      for (const encoding of ['', 'gzip', 'br', 'deflate']) {
        it(`${form}, ${encoding || 'identity'}: JSON and a fully read stream`, async () => {
          const source = `${setup}
const send = (url, init) => ${call};
for (const stream of [false, true]) {
  const url = BASE + '${flagged(encoding)}/v1/chat/completions';
  const init = jsonInit(chatBody({ stream }));
  const res = await send(url, init);
  show(stream ? 'stream' : 'json', res.status + ' ' + res.headers.get('content-encoding') + ' ' + (await res.text()));
}`;
          await runScenario(mock(), { source, calls: form.startsWith('setGlobal') ? 3 : 2 });
        });
      }
    }
  });

  // -------------------------------------------------------------------------
  // 2. The app's own npm undici: request, fetch and stream, in three majors.
  // -------------------------------------------------------------------------
  group('2. npm undici', (mock) => {
    const apis: Record<string, { calls: number; source: (pkg: string) => string }> = {
      // request never decodes: the app gets gzip bytes and inflates them itself.
      request: {
        calls: 5,
        source: (pkg) => `import { request } from '${pkg}';
import { gunzipSync } from 'node:zlib';
const opts = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
for (const [label, flags, body] of [
  ['json', '', chatBody()],
  ['json gzip', '/mock/gzip', chatBody()],
  ['sse', '', chatBody({ stream: true })],
  ['sse gzip', '/mock/gzip', chatBody({ stream: true })],
]) {
  const res = await request(BASE + flags + '/v1/chat/completions', opts(body));
  const raw = Buffer.from(await res.body.arrayBuffer());
  const encoding = res.headers['content-encoding'];
  const text = (encoding === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
  // Compressed sizes vary with the usage numbers: print whether the bytes were gzip, not how many.
  const gzipBytes = raw[0] === 0x1f && raw[1] === 0x8b;
  show('request ' + label, res.statusCode + ' ' + encoding + ' gzip bytes: ' + gzipBytes + ' ' + text);
}
// After the calls above this undici is known to publish body chunks: the speech request's body
// (its only source of a model) comes from the channel alone.
const speech = await request(BASE + '/v1/audio/speech', opts({ model: 'voxtral-mini-tts-latest', input: 'Bonjour', stream: true }));
show('request speech sse', speech.statusCode + ' ' + (await speech.body.text()));`,
      },
      fetch: {
        calls: 4,
        source: (pkg) => `import { fetch } from '${pkg}';
for (const [label, flags, body] of [
  ['json', '', chatBody()],
  ['json gzip', '/mock/gzip', chatBody()],
  ['sse', '', chatBody({ stream: true })],
  ['sse br', '/mock/br', chatBody({ stream: true })],
]) {
  const res = await fetch(BASE + flags + '/v1/chat/completions', jsonInit(body));
  show('fetch ' + label, res.status + ' ' + (await res.text()));
}`,
      },
      stream: {
        calls: 2,
        source: (pkg) => `import { stream } from '${pkg}';
import { Writable } from 'node:stream';
for (const [label, body] of [['json', chatBody()], ['sse', chatBody({ stream: true })]]) {
  const chunks = [];
  await stream(
    BASE + '/v1/chat/completions',
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), opaque: chunks },
    ({ statusCode, opaque }) => new Writable({ write(chunk, _encoding, done) { opaque.push(chunk); done(); } }),
  );
  show('stream ' + label, Buffer.concat(chunks).toString('utf8'));
}`,
      },
    };
    for (const pkg of ['undici', 'undici-v6', 'undici-v8']) {
      for (const [api, { calls, source }] of Object.entries(apis)) {
        const skip = pkg === 'undici-v8' ? undici8Skip : false;
        it(`${pkg} ${api}()`, { skip }, async () => {
          await runScenario(mock(), { source: source(pkg), calls });
        });
      }
    }
  });

  // -------------------------------------------------------------------------
  // 3. Real SDKs, called the way their users call them.
  // -------------------------------------------------------------------------
  group('3. SDKs', (mock) => {
    // Every SDK runs against plain responses and against gzip ones (the real API gzips when asked).
    for (const flags of ['', 'gzip']) {
      const variant = flags || 'identity';
      // JavaScript source for the app: the server URL, with the mock flags as a path prefix.
      const serverURL = `BASE + '${flagged(flags)}'`;

      it(`@mistralai/mistralai: chat.complete, chat.stream, fim.complete, embeddings.create (${variant})`, async () => {
        const source = `import { Mistral } from '@mistralai/mistralai';
const client = new Mistral({ apiKey: 'k', serverURL: ${serverURL} });
show('chat.complete', await client.chat.complete(chatBody()));
const stream = await client.chat.stream(chatBody());
for await (const event of stream) show('chat.stream', event.data);
show('fim.complete', await client.fim.complete({ model: 'codestral-latest', prompt: 'def f(', suffix: 'return 1' }));
show('embeddings.create', await client.embeddings.create({ model: 'mistral-embed', inputs: ['a', 'b'] }));`;
        await runScenario(mock(), { source, calls: 4 });
      });

      it(`@mistralai/mistralai: chat.stream left with break right after the finish_reason chunk (${variant})`, async () => {
        // Usage rides on the finish_reason chunk, so it has arrived when the loop breaks. The mock
        // spaces events 400 ms apart (wide enough for a loaded CI machine), so the SDK cancels the
        // body BEFORE [DONE] arrives: for gzip that is a compressed stream cut mid-way, whose usage
        // must still be found.
        const source = `import { Mistral } from '@mistralai/mistralai';
const client = new Mistral({ apiKey: 'k', serverURL: BASE + '${flagged(flags ? `${flags},delay=400` : 'delay=400')}' });
const stream = await client.chat.stream(chatBody());
for await (const event of stream) {
  show('chunk', event.data);
  if (event.data.choices[0]?.finishReason) break;
}
show('after break', 'ok');`;
        const disconnectsBefore = mock().disconnects.length;
        await runScenario(mock(), { source, calls: 1 });
        // Both runs (baseline and instrumented) left before [DONE]: the cancel path was exercised.
        await mock().waitForDisconnects(disconnectsBefore + 2);
      });

      it(`openai: chat.completions.create, plain and stream: true (${variant})`, async () => {
        const source = `import OpenAI from 'openai';
const client = new OpenAI({ apiKey: 'k', baseURL: ${serverURL} + '/v1' });
show('create', await client.chat.completions.create(chatBody()));
const stream = await client.chat.completions.create(chatBody({ stream: true }));
for await (const chunk of stream) show('chunk', chunk);`;
        await runScenario(mock(), { source, calls: 2 });
      });

      it(`openai: stream left with break after the first chunk (${variant})`, async () => {
        // openai aborts the request on break. The mock spaces the events 200 ms apart so the abort
        // lands long before the usage chunk: no usage arrived, so no row. Should the usage chunk
        // have been served anyway, exactly one row is expected: the served list decides.
        const source = `import OpenAI from 'openai';
const client = new OpenAI({ apiKey: 'k', baseURL: BASE + '${flagged(flags ? `${flags},delay=200` : 'delay=200')}/v1' });
const stream = await client.chat.completions.create(chatBody({ stream: true }));
for await (const chunk of stream) {
  show('first chunk', chunk);
  break;
}
show('after break', 'ok');`;
        const disconnectsBefore = mock().disconnects.length;
        const { served } = await runScenario(mock(), { source, calls: 'any' });
        // runScenario already matched rows to whatever was served; this pins down which case ran:
        // both runs (baseline and instrumented) cut their stream before the usage chunk.
        await mock().waitForDisconnects(disconnectsBefore + 2);
        assert.equal(served.length, 0, 'with 200 ms between events the abort beats the usage chunk');
      });

      it(`Vercel AI SDK (ai + @ai-sdk/mistral): generateText and streamText (${variant})`, async () => {
        const source = `import { generateText, streamText } from 'ai';
import { createMistral } from '@ai-sdk/mistral';
const mistral = createMistral({ baseURL: ${serverURL} + '/v1', apiKey: 'k' });
const generated = await generateText({ model: mistral('mistral-small-latest'), prompt: 'Bonjour?' });
show('generateText', { text: generated.text, finishReason: generated.finishReason });
const streamed = streamText({ model: mistral('mistral-small-latest'), prompt: 'Bonjour?' });
let text = '';
for await (const part of streamed.textStream) text += part;
show('streamText', { text, finishReason: await streamed.finishReason });`;
        await runScenario(mock(), { source, calls: 2 });
      });
    }
  });

  // -------------------------------------------------------------------------
  // 4. Every endpoint, through plain fetch.
  // -------------------------------------------------------------------------
  group('4. endpoints', (mock) => {
    const audioForm = `(stream) => {
  const form = new FormData();
  form.append('model', 'voxtral-mini-latest');
  form.append('file', new Blob([new Uint8Array(64).fill(7)], { type: 'audio/mpeg' }), 'hello.mp3');
  if (stream) form.append('stream', 'true');
  return form;
}`;
    const cases: { name: string; calls: number; source: string }[] = [
      {
        name: 'fim/completions, JSON and stream',
        calls: 2,
        source: `for (const stream of [false, true]) await call('fim', '/v1/fim/completions', { model: 'codestral-latest', prompt: 'def f(', suffix: 'return 1', stream });`,
      },
      {
        name: 'agents/completions (agent_id, no model in the request), JSON and stream',
        calls: 2,
        source: `for (const stream of [false, true]) await call('agents', '/v1/agents/completions', { agent_id: 'ag_mock', messages: [{ role: 'user', content: 'hi' }], stream });`,
      },
      {
        name: 'embeddings (no completion_tokens: logged as 0)',
        calls: 1,
        source: `await call('embeddings', '/v1/embeddings', { model: 'mistral-embed', input: ['a', 'b', 'c'] });`,
      },
      {
        name: 'embeddings of 2,000 inputs: a body over 64 KiB, its usage read from its end (identity and gzip)',
        calls: 2,
        source: `const input = Array.from({ length: 2000 }, (_, i) => 'text ' + i);
await call('embeddings', '/v1/embeddings', { model: 'mistral-embed', input });
await call('embeddings gzip', '/mock/gzip/v1/embeddings', { model: 'mistral-embed', input });`,
      },
      {
        name: 'moderations, chat/moderations, classifications, chat/classifications (total logged as reported)',
        calls: 4,
        source: `await call('moderations', '/v1/moderations', { model: 'mistral-moderation-latest', input: ['a', 'b'] });
await call('chat/moderations', '/v1/chat/moderations', { model: 'mistral-moderation-latest', input: [{ role: 'user', content: 'hi' }] });
await call('classifications', '/v1/classifications', { model: 'mistral-moderation-latest', input: ['a'] });
await call('chat/classifications', '/v1/chat/classifications', { model: 'mistral-moderation-latest', input: [{ role: 'user', content: 'hi' }] });`,
      },
      {
        name: 'conversations start / append / restart, JSON (model from outputs[].model)',
        calls: 3,
        source: `await call('start', '/v1/conversations', { model: 'mistral-large-latest', inputs: 'hi' });
await call('append', '/v1/conversations/conv_app/', { inputs: 'more' });
await call('restart', '/v1/conversations/conv_app/restart', { inputs: 'again', from_entry_id: 'msg_1' });`,
      },
      {
        name: 'conversations start / append / restart, stream: true (model from message.output.delta)',
        calls: 3,
        source: `await call('start', '/v1/conversations', { model: 'mistral-large-latest', inputs: 'hi', stream: true });
await call('append', '/v1/conversations/conv_app', { inputs: 'more', stream: true });
await call('restart', '/v1/conversations/conv_app/restart', { inputs: 'again', from_entry_id: 'msg_1', stream: true });`,
      },
      {
        name: 'audio/transcriptions, multipart, JSON and streamed',
        calls: 2,
        source: `const form = ${audioForm};
await call('transcription', '/v1/audio/transcriptions', form(false));
await call('transcription stream', '/v1/audio/transcriptions', form(true));`,
      },
      {
        name: "audio/speech streamed (no model in the response: the request's model is logged)",
        calls: 1,
        source: `await call('speech stream', '/v1/audio/speech', { model: 'voxtral-mini-tts-latest', input: 'Bonjour', stream: true });`,
      },
      {
        name: "chat, then audio/speech streamed: the request's model is logged after the preload has seen this undici publish body chunks",
        calls: 3,
        source: `await call('chat', '/v1/chat/completions', { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] });
await call('speech stream', '/v1/audio/speech', { model: 'voxtral-mini-tts-latest', input: 'Bonjour', stream: true });
await call('speech stream again', '/v1/audio/speech', { model: 'voxtral-mini-tts-2603', input: 'Salut', stream: true });`,
      },
      {
        // OCR reports pages (usage_info.pages_processed), not tokens: no row, even when a
        // token-shaped usage object rides along, and no warning.
        name: 'ocr (pages, not tokens): no row, no warning',
        calls: 0,
        source: `await call('ocr', '/v1/ocr', { model: 'mistral-ocr-latest', document: { type: 'document_url', document_url: 'https://example.com/a.pdf' } });
await call('ocr gzip', '/mock/gzip/v1/ocr', { model: 'mistral-ocr-latest', document: { type: 'document_url', document_url: 'https://example.com/a.pdf' } });`,
      },
      {
        name: 'audio/speech non-streamed (no usage: no row, no warning) and GET /v1/models (no row)',
        calls: 0,
        source: `const res = await fetch(BASE + '/v1/audio/speech', jsonInit({ model: 'voxtral-mini-tts-latest', input: 'Bonjour' }));
const body = await res.json();
show('speech', res.status + ' ' + Object.keys(body).join(',') + ' ' + body.audio_data.length);
const models = await fetch(BASE + '/v1/models');
show('models', models.status + ' ' + (await models.text()));`,
      },
    ];
    for (const { name, calls, source } of cases) {
      it(name, async () => {
        await runScenario(mock(), { source, calls });
      });
    }
  });

  // -------------------------------------------------------------------------
  // 5. Which URLs count: any path prefix on a configured host; nothing else.
  // -------------------------------------------------------------------------
  group('5. prefixes and hosts', (mock) => {
    const chatTwice = `for (const stream of [false, true]) await call(stream ? 'stream' : 'json', '/v1/chat/completions', chatBody({ stream }));`;

    it('a gateway path prefix before /v1/ still logs', async () => {
      const { served } = await runScenario(mock(), { source: chatTwice, calls: 2, base: `${mock().url}/gateway/mistral` });
      for (const { path } of served) assert.match(path, /^\/gateway\/mistral\/v1\//);
    });

    // Gateways on a configured host: an OpenAI client whose base URL lacks /v1, LiteLLM-style
    // routes, Azure AI Foundry's /models/chat/completions?api-version=...
    it('gateway shapes without /v1: /chat/completions, /litellm/embeddings, /models/chat/completions?api-version=', async () => {
      const source = `await call('bare json', '/chat/completions', chatBody());
await call('bare stream', '/chat/completions', chatBody({ stream: true }));
await call('litellm embeddings', '/litellm/embeddings', { model: 'mistral-embed', input: ['a'] });
await call('azure json', '/models/chat/completions?api-version=2024-05-01-preview', chatBody());
await call('azure stream', '/models/chat/completions?api-version=2024-05-01-preview', chatBody({ stream: true }));
const models = await fetch(BASE + '/v1/models');
show('models', models.status);`;
      const { served } = await runScenario(mock(), { source, calls: 5 });
      assert.deepEqual(
        served.map((s) => s.path),
        ['/chat/completions', '/chat/completions', '/litellm/embeddings', '/models/chat/completions', '/models/chat/completions'],
      );
    });

    it('openai with a base URL that lacks /v1 (a gateway): create, plain and streamed', async () => {
      const source = `import OpenAI from 'openai';
const client = new OpenAI({ apiKey: 'k', baseURL: BASE + '/openai-gateway', maxRetries: 0 });
show('create', await client.chat.completions.create(chatBody()));
const stream = await client.chat.completions.create(chatBody({ stream: true }));
for await (const chunk of stream) show('chunk', chunk);`;
      const { served } = await runScenario(mock(), { source, calls: 2 });
      for (const { path } of served) assert.equal(path, '/openai-gateway/chat/completions');
    });

    // undici decodes no coding once one is unknown, and hands the body over as it came: the app
    // reads its usage, so the row is written.
    it('content-encoding utf-8, none and compress on a plain body: one row each, as the app reads it', async () => {
      const source = `for (const label of ['utf-8', 'none', 'compress']) {
  await call(label + ' json', '/mock/label=' + label + '/v1/chat/completions', chatBody());
  await call(label + ' stream', '/mock/label=' + label + '/v1/chat/completions', chatBody({ stream: true }));
}`;
      await runScenario(mock(), { source, calls: 6 });
    });

    it('the same server through a host that is not configured (localhost, when 127.0.0.1:PORT is) logs nothing', async () => {
      await runScenario(mock(), { source: chatTwice, calls: 2, logged: false, base: `http://localhost:${mock().port}` });
    });
  });

  // -------------------------------------------------------------------------
  // 6. Threads and processes: every one of them writes to the first process's file.
  // -------------------------------------------------------------------------
  group('6. workers and child processes', (mock) => {
    // Two calls per thread (workers share process.env, hence MOCK_BASE); results go back to the
    // main thread, which prints them in a fixed order.
    const worker = `${PRELUDE}
import { parentPort } from 'node:worker_threads';
const out = [];
for (const stream of [false, true]) {
  const res = await fetch(BASE + '/v1/chat/completions', jsonInit(chatBody({ stream })));
  out.push(res.status + ' ' + (await res.text()));
}
parentPort.postMessage(out);`;
    const workersApp = (withEmptyExecArgv: boolean): string => `import { Worker } from 'node:worker_threads';
const start = (options = {}) => new Promise((resolve, reject) => {
  const w = new Worker(new URL('./worker.mjs', import.meta.url), options);
  let result;
  w.on('message', (m) => (result = m));
  w.on('error', reject);
  w.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error('worker exit ' + code))));
});
const results = await Promise.all([start(), start(), start()${withEmptyExecArgv ? ', start({ execArgv: [] })' : ''}]);
results.forEach((lines, i) => lines.forEach((line) => show('worker ' + i, line)));`;

    it('--import: 3 Workers with default options, 2 calls each', async () => {
      await runScenario(mock(), { source: workersApp(false), calls: 6, files: { 'worker.mjs': worker } });
    });

    it('NODE_OPTIONS=--import: 3 default Workers and one with execArgv: []', async () => {
      await runScenario(mock(), { source: workersApp(true), calls: 8, files: { 'worker.mjs': worker }, via: 'node-options' });
    });

    // The child runs in ANOTHER directory; the parent gave MISTRAL_USAGE_LOG as a relative path,
    // which must resolve against the parent's cwd, not the child's.
    const child = `${PRELUDE}\nawait call('child', '/v1/chat/completions', chatBody({ stream: true }));`;
    const parentApp = (launch: 'fork' | 'spawn'): string => `import { fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
await call('parent', '/v1/chat/completions', chatBody());
const script = fileURLToPath(new URL('./elsewhere/child.mjs', import.meta.url));
const options = { cwd: fileURLToPath(new URL('./elsewhere/', import.meta.url)), stdio: 'inherit' };
const child = ${launch === 'fork' ? 'fork(script, [], options)' : 'spawn(process.execPath, [script], options)'};
const code = await new Promise((resolve) => child.on('exit', resolve));
show('child exit', String(code));
await call('parent again', '/v1/chat/completions', chatBody());`;
    const launches: { name: string; launch: 'fork' | 'spawn'; via: 'import' | 'node-options' }[] = [
      { name: '--import: fork() of a child in another cwd', launch: 'fork', via: 'import' },
      { name: 'NODE_OPTIONS=--import: spawn(process.execPath, [child]) in another cwd', launch: 'spawn', via: 'node-options' },
      { name: 'NODE_OPTIONS=--import: fork() of a child in another cwd', launch: 'fork', via: 'node-options' },
    ];
    for (const { name, launch, via } of launches) {
      it(`${name}, MISTRAL_USAGE_LOG relative: all rows in the parent's file`, async () => {
        await runScenario(mock(), {
          source: parentApp(launch),
          calls: 3,
          via,
          files: { 'elsewhere/child.mjs': child },
          logEnv: LOG_NAME,
          inspect: async (cwd) => {
            assert.equal(await exists(join(cwd, 'elsewhere', LOG_NAME)), false, "nothing written relative to the child's cwd");
          },
        });
      });
    }
  });
});
