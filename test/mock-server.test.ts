/**
 * Tests of the mock Mistral server itself, over plain fetch and node:http (no
 * preload involved), plus a smoke test of the child-process helpers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import {
  CONTENT_PIECES,
  REPLY_TEXT,
  buildSseEvents,
  planSse,
  formatSseEvent,
  parseFlags,
  parsePath,
  parseSse,
  resolveFlags,
  startMockMistral,
  usageFor,
  zstdAvailable,
} from './support/mock-mistral.js';
import type { MockMistral, ResponseContext, SseEvent } from './support/mock-mistral.js';
import { mockFor, parseCsv, readCsv, repoRoot, runApp, runNode, tempDir } from './support/run-app.js';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

function postJson(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...init });
}

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Each 'data' chunk as received (still content-encoded). */
  chunks: Buffer[];
  body: Buffer;
  /** Set when the response ended abnormally (socket destroyed mid-body). */
  error?: Error;
}

/** POST over node:http so we see the bytes exactly as sent: no decoding, no buffering. */
function rawPost(url: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        const out: RawResponse = { status: res.statusCode ?? 0, headers: res.headers, chunks, body: Buffer.concat(chunks) };
        if (error) out.error = error;
        resolve(out);
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => finish());
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new Error('aborted')));
      res.on('close', () => {
        if (!res.complete) finish(new Error('closed before complete'));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function decode(encoding: string | undefined, body: Buffer): Buffer {
  switch (encoding) {
    case undefined:
      return body;
    case 'gzip':
      return zlib.gunzipSync(body);
    case 'deflate':
      return zlib.inflateSync(body);
    case 'br':
      return zlib.brotliDecompressSync(body);
    case 'zstd':
      return (zlib as unknown as { zstdDecompressSync: (b: Buffer) => Buffer }).zstdDecompressSync(body);
    default:
      throw new Error(`unexpected encoding ${encoding}`);
  }
}

function json(buf: Buffer): Record<string, unknown> {
  return JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
}

function dataOf(ev: SseEvent | undefined): Record<string, unknown> {
  assert.ok(ev, 'event missing');
  return JSON.parse(ev.data) as Record<string, unknown>;
}

const CHAT = '/v1/chat/completions';
const chatBody = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }], ...extra });

// ---------------------------------------------------------------------------
// pure parts
// ---------------------------------------------------------------------------

describe('flags and paths', () => {
  it('parses every flag and rejects unknown ones', () => {
    assert.deepEqual(parseFlags('gzip,chunk=1,delay=5,crlf,events=3,status=429,malformed,truncated,nousage,hang,big=4,nocontenttype,model=x-1'), {
      encoding: 'gzip',
      chunk: 1,
      delay: 5,
      crlf: true,
      events: 3,
      status: 429,
      malformed: true,
      truncated: true,
      nousage: true,
      hang: true,
      big: 4,
      nocontenttype: true,
      model: 'x-1',
    });
    assert.deepEqual(parseFlags('crlf=0, br'), { crlf: false, encoding: 'br' });
    assert.throws(() => parseFlags('gzpi'), /unknown mock flag/);
    assert.throws(() => parseFlags('chunk=0'), /integer >= 1/);
    assert.equal(resolveFlags(parseFlags('gzip,crlf'), parseFlags('br')).encoding, 'br');
  });

  it('splits paths at the first /v1/ and collects /mock/ flags', () => {
    assert.deepEqual(parsePath('/v1/chat/completions'), { prefix: '', endpoint: 'chat/completions', flagSpec: '' });
    assert.deepEqual(parsePath('/gw/mistral/mock/gzip,chunk=1/v1/conversations/conv_1/restart'), {
      prefix: '/gw/mistral/mock/gzip,chunk=1',
      endpoint: 'conversations/conv_1/restart',
      flagSpec: 'gzip,chunk=1',
    });
    assert.equal(parsePath('/models'), null);
  });

  it('usage numbers are unique per response and follow each endpoint total rule', () => {
    assert.deepEqual(usageFor('chat', 1).wire, { prompt_tokens: 101, total_tokens: 111, completion_tokens: 10, prompt_tokens_details: { cached_tokens: 0 } });
    assert.deepEqual(usageFor('embeddings', 2).wire, { prompt_tokens: 102, total_tokens: 102 });
    const mod = usageFor('moderations', 3);
    assert.equal(mod.total, 103 * 3);
    assert.notEqual(mod.total, mod.prompt + mod.completion);
    const tr = usageFor('transcriptions', 4);
    assert.notEqual(tr.total, tr.prompt + tr.completion);
  });

  it('formatSseEvent and parseSse round-trip, with LF, CRLF and multi-line data', () => {
    const events: SseEvent[] = [{ data: '{"a":1}' }, { event: 'x.y', data: 'line1\nline2' }, { data: '[DONE]' }];
    for (const crlf of [false, true]) {
      const text = events.map((e) => formatSseEvent(e, crlf)).join('');
      assert.deepEqual(parseSse(text), events);
    }
    assert.deepEqual(parseSse(': comment\rdata:x\r\r'), [{ data: 'x' }]);
  });

  it('planSse puts usage only on the last content chunk of a data-only stream', () => {
    const ctx: ResponseContext = { kind: 'chat', n: 1, model: 'm', inputs: 1, conversationId: 'c', flags: resolveFlags({ events: 3 }) };
    const plan = planSse(ctx);
    assert.deepEqual([plan.length, plan.usageIndex, plan.firstContentIndex, plan.contentCount], [4, 2, 0, 3]);
    const events = buildSseEvents(ctx);
    assert.equal(events[3]?.data, '[DONE]');
    assert.deepEqual(
      events.slice(0, 3).map((e) => 'usage' in dataOf(e)),
      [false, false, true],
    );
    assert.equal(planSse({ ...ctx, flags: resolveFlags({ nousage: true }) }).usageIndex, -1);
    const conv = planSse({ ...ctx, kind: 'conversations', flags: resolveFlags({ malformed: true }) });
    assert.equal(conv.eventAt(conv.length - 1).event, 'conversation.response.done');
    assert.throws(() => JSON.parse(conv.eventAt(conv.length - 1).data));
  });
});

// ---------------------------------------------------------------------------
// JSON endpoints
// ---------------------------------------------------------------------------

describe('JSON responses', () => {
  it('chat, fim and agents return chat.completion with usage and echo the model', async (t) => {
    const mock = await mockFor(t);
    const chat = await postJson(mock.url + CHAT, chatBody());
    assert.equal(chat.status, 200);
    assert.equal(chat.headers.get('content-type'), 'application/json');
    const c = (await chat.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(c), ['id', 'object', 'model', 'created', 'choices', 'usage']);
    assert.equal(c['object'], 'chat.completion');
    assert.equal(c['model'], 'mistral-small-latest');
    assert.equal(c['created'], 1700000000);
    assert.deepEqual(c['choices'], [{ index: 0, message: { role: 'assistant', content: REPLY_TEXT, tool_calls: null, prefix: false }, finish_reason: 'stop' }]);
    assert.deepEqual(c['usage'], usageFor('chat', 1).wire);

    const fim = (await (await postJson(`${mock.url}/v1/fim/completions`, { model: 'codestral-2508', prompt: 'def' })).json()) as Record<string, unknown>;
    assert.equal(fim['model'], 'codestral-2508');
    assert.equal(fim['object'], 'chat.completion');

    // Agents requests carry agent_id, not model: the reply names the model.
    const agents = (await (await postJson(`${mock.url}/v1/agents/completions`, { agent_id: 'ag_1', messages: [] })).json()) as Record<string, unknown>;
    assert.equal(agents['model'], 'mistral-medium-2505');

    assert.deepEqual(mock.served, [
      { path: CHAT, route: CHAT, model: 'mistral-small-latest', promptTokens: 101, completionTokens: 10, totalTokens: 111, stream: false },
      { path: '/v1/fim/completions', route: '/v1/fim/completions', model: 'codestral-2508', promptTokens: 102, completionTokens: 17, totalTokens: 119, stream: false },
      { path: '/v1/agents/completions', route: '/v1/agents/completions', model: 'mistral-medium-2505', promptTokens: 103, completionTokens: 24, totalTokens: 127, stream: false },
    ]);
  });

  it('embeddings have no completion_tokens and one 8-float vector per input', async (t) => {
    const mock = await mockFor(t);
    const body = (await (await postJson(`${mock.url}/v1/embeddings`, { model: 'mistral-embed', input: ['a', 'b'] })).json()) as Record<string, unknown>;
    assert.equal(body['object'], 'list');
    assert.equal(body['model'], 'mistral-embed');
    assert.deepEqual(body['usage'], { prompt_tokens: 101, total_tokens: 101 });
    const data = body['data'] as { object: string; embedding: number[]; index: number }[];
    assert.equal(data.length, 2);
    assert.deepEqual(
      data.map((d) => [d.object, d.embedding.length, d.index]),
      [
        ['embedding', 8, 0],
        ['embedding', 8, 1],
      ],
    );
    assert.deepEqual(mock.served[0], { path: '/v1/embeddings', route: '/v1/embeddings', model: 'mistral-embed', promptTokens: 101, completionTokens: 0, totalTokens: 101, stream: false });
  });

  it('moderations and classifications (plain and chat/) report a total that is not prompt+completion', async (t) => {
    const mock = await mockFor(t);
    for (const path of ['/v1/moderations', '/v1/chat/moderations', '/v1/classifications', '/v1/chat/classifications']) {
      const body = (await (await postJson(mock.url + path, { model: 'mistral-moderation-2411', input: ['x'] })).json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['id', 'model', 'results', 'usage'], path);
      assert.equal(body['model'], 'mistral-moderation-2411');
      const usage = body['usage'] as Record<string, number>;
      assert.equal(usage['completion_tokens'], 0);
      assert.equal(usage['total_tokens'], (usage['prompt_tokens'] ?? 0) * 3);
      assert.equal((body['results'] as unknown[]).length, 1);
    }
    assert.deepEqual(
      mock.served.map((s) => [s.route, s.promptTokens, s.completionTokens, s.totalTokens]),
      [
        ['/v1/moderations', 101, 0, 303],
        ['/v1/chat/moderations', 102, 0, 306],
        ['/v1/classifications', 103, 0, 309],
        ['/v1/chat/classifications', 104, 0, 312],
      ],
    );
  });

  it('conversations: start echoes the model in outputs only; append and restart use a fixed model', async (t) => {
    const mock = await mockFor(t);
    const start = (await (await postJson(`${mock.url}/v1/conversations`, { model: 'mistral-large-latest', inputs: 'hi' })).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(start), ['object', 'conversation_id', 'outputs', 'usage']);
    assert.equal(start['object'], 'conversation.response');
    assert.equal('model' in start, false);
    const outputs = start['outputs'] as Record<string, unknown>[];
    assert.equal(outputs[0]?.['type'], 'message.output');
    assert.equal(outputs[0]?.['object'], 'entry');
    assert.equal(outputs[0]?.['model'], 'mistral-large-latest');
    assert.deepEqual(start['usage'], { prompt_tokens: 101, completion_tokens: 10, total_tokens: 111, connector_tokens: null, connectors: null });

    const id = start['conversation_id'] as string;
    const append = (await (await postJson(`${mock.url}/v1/conversations/${id}`, { inputs: 'more' })).json()) as Record<string, unknown>;
    assert.equal(append['conversation_id'], id);
    assert.equal((append['outputs'] as Record<string, unknown>[])[0]?.['model'], 'mistral-medium-2505');
    const restart = await postJson(`${mock.url}/v1/conversations/${id}/restart`, { inputs: 'again', from_entry_id: 'msg_1' });
    assert.equal(restart.status, 200);
    assert.deepEqual(
      mock.served.map((s) => [s.route, s.model]),
      [
        ['/v1/conversations', 'mistral-large-latest'],
        [`/v1/conversations/${id}`, 'mistral-medium-2505'],
        [`/v1/conversations/${id}/restart`, 'mistral-medium-2505'],
      ],
    );
  });

  it('transcriptions take multipart and report total != prompt + completion', async (t) => {
    const mock = await mockFor(t);
    const form = new FormData();
    form.append('model', 'voxtral-mini-2507');
    form.append('file', new Blob([Buffer.from('RIFF fake wav')], { type: 'audio/wav' }), 'a.wav');
    const res = await fetch(`${mock.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['model', 'text', 'language', 'segments', 'usage']);
    assert.equal(body['model'], 'voxtral-mini-2507');
    const s = mock.served[0];
    assert.ok(s);
    assert.equal(s.model, 'voxtral-mini-2507');
    assert.notEqual(s.totalTokens, s.promptTokens + s.completionTokens);
  });

  it('non-streamed speech returns only audio_data and is not served', async (t) => {
    const mock = await mockFor(t);
    const body = (await (await postJson(`${mock.url}/v1/audio/speech`, { model: 'voxtral-tts', input: 'hi' })).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body), ['audio_data']);
    assert.equal(mock.served.length, 0);
  });

  it('GET /v1/models lists models; unknown paths and methods get Mistral-shaped errors', async (t) => {
    const mock = await mockFor(t);
    const models = (await (await fetch(`${mock.url}/v1/models`)).json()) as { object: string; data: { id: string; object: string }[] };
    assert.equal(models.object, 'list');
    assert.ok(models.data.some((m) => m.id === 'mistral-small-latest' && m.object === 'model'));
    for (const [method, path, status] of [
      ['POST', '/v1/nope', 404],
      ['POST', '/chat/completionsX', 404],
      ['GET', CHAT, 405],
    ] as const) {
      const res = await fetch(mock.url + path, method === 'POST' ? { method, body: '{}' } : { method });
      assert.equal(res.status, status, path);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(body['object'], 'error');
      assert.equal(body['param'], null);
    }
    assert.equal(mock.served.length, 0);
  });

  it('prefixes before /v1/ are accepted and kept in served.path', async (t) => {
    const mock = await mockFor(t);
    const res = await postJson(`${mock.url}/gw/mistral/v1/chat/completions?x=1`, chatBody());
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(mock.served[0]?.path, '/gw/mistral/v1/chat/completions');
    assert.equal(mock.served[0]?.route, CHAT);
  });

  it('model=NAME overrides the echoed model everywhere the response names one', async (t) => {
    const mock = await mockFor(t);
    const chat = (await (await postJson(`${mock.url}/mock/model=mistral-small-2506${CHAT}`, chatBody())).json()) as Record<string, unknown>;
    assert.equal(chat['model'], 'mistral-small-2506');
    const sse = parseSse(await (await postJson(`${mock.url}/mock/model=mistral-small-2506${CHAT}`, chatBody({ stream: true }))).text());
    assert.ok(sse.slice(0, -1).every((e) => dataOf(e)['model'] === 'mistral-small-2506'));
    // Speech replies name no model, so the logged one stays the request's.
    await (await postJson(`${mock.url}/mock/model=other/v1/audio/speech`, { model: 'voxtral-tts', input: 'x', stream: true })).text();
    assert.deepEqual(
      mock.served.map((s) => s.model),
      ['mistral-small-2506', 'mistral-small-2506', 'voxtral-tts'],
    );
  });
});

// ---------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------

describe('SSE streams', () => {
  it('chat stream: data-only chunks, usage only on the finish_reason chunk, then [DONE]', async (t) => {
    const mock = await mockFor(t);
    const res = await postJson(mock.url + CHAT, chatBody({ stream: true }));
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const text = await res.text();
    assert.match(text, /^data: \{/);
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    assert.equal(text.includes('event:'), false);
    const events = parseSse(text);
    assert.equal(events.length, 6);
    const chunks = events.slice(0, 5).map(dataOf);
    for (const [i, c] of chunks.entries()) {
      assert.equal(c['object'], 'chat.completion.chunk');
      assert.equal(c['created'], 1700000000);
      assert.equal(c['model'], 'mistral-small-latest');
      assert.equal(typeof c['id'], 'string');
      const choice = (c['choices'] as Record<string, unknown>[])[0];
      assert.equal(choice?.['finish_reason'], i === 4 ? 'stop' : null);
      assert.equal('usage' in c, i === 4);
    }
    assert.equal(chunks.map((c) => ((c['choices'] as { delta: { content: string } }[])[0]?.delta.content ?? '')).join(''), CONTENT_PIECES.slice(0, 5).join(''));
    assert.deepEqual(chunks[4]?.['usage'], usageFor('chat', 1).wire);
    assert.deepEqual(mock.served, [{ path: CHAT, route: CHAT, model: 'mistral-small-latest', promptTokens: 101, completionTokens: 10, totalTokens: 111, stream: true }]);
  });

  it('events=N sets the number of content chunks; fim and agents stream the same way', async (t) => {
    const mock = await mockFor(t);
    const one = parseSse(await (await postJson(`${mock.url}/mock/events=1${CHAT}`, chatBody({ stream: true }))).text());
    assert.equal(one.length, 2);
    assert.ok('usage' in dataOf(one[0]));
    for (const path of ['/v1/fim/completions', '/v1/agents/completions']) {
      const ev = parseSse(await (await postJson(`${mock.url}/mock/events=8${path}`, { model: 'codestral-latest', agent_id: 'ag', stream: true })).text());
      assert.equal(ev.length, 9, path);
      assert.equal(ev[8]?.data, '[DONE]');
    }
    assert.deepEqual(
      mock.served.map((s) => s.model),
      ['mistral-small-latest', 'codestral-latest', 'mistral-medium-2505'],
    );
  });

  it('conversation stream: named events, model on deltas, usage on conversation.response.done, no [DONE]', async (t) => {
    const mock = await mockFor(t);
    const text = await (await postJson(`${mock.url}/v1/conversations`, { model: 'mistral-medium-latest', inputs: 'hi', stream: true })).text();
    const events = parseSse(text);
    assert.deepEqual(
      events.map((e) => e.event),
      ['conversation.response.started', ...Array<string>(5).fill('message.output.delta'), 'conversation.response.done'],
    );
    assert.equal(text.includes('[DONE]'), false);
    for (const e of events) assert.equal(dataOf(e)['type'], e.event);
    assert.equal(dataOf(events[1])['model'], 'mistral-medium-latest');
    const done = dataOf(events[6]);
    assert.equal('model' in done, false);
    assert.deepEqual(done['usage'], usageFor('conversations', 1).wire);
    assert.deepEqual(mock.served[0], { path: '/v1/conversations', route: '/v1/conversations', model: 'mistral-medium-latest', promptTokens: 101, completionTokens: 10, totalTokens: 111, stream: true });
  });

  it('transcription stream (multipart stream=true): deltas then transcription.done with model and usage', async (t) => {
    const mock = await mockFor(t);
    const form = new FormData();
    form.append('model', 'voxtral-mini-latest');
    form.append('stream', 'true');
    form.append('file', new Blob([Buffer.from('x')]), 'a.mp3');
    const res = await fetch(`${mock.url}/v1/audio/transcriptions`, { method: 'POST', body: form });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const events = parseSse(await res.text());
    assert.equal(events.at(-1)?.event, 'transcription.done');
    assert.ok(events.some((e) => e.event === 'transcription.text.delta'));
    const done = dataOf(events.at(-1));
    assert.equal(done['model'], 'voxtral-mini-latest');
    assert.deepEqual(done['usage'], usageFor('transcriptions', 1).wire);
    assert.equal(mock.served[0]?.stream, true);
  });

  it('speech stream: base64 audio deltas, speech.audio.done with usage and no model', async (t) => {
    const mock = await mockFor(t);
    const events = parseSse(await (await postJson(`${mock.url}/v1/audio/speech`, { model: 'voxtral-mini-tts', input: 'hi', stream: true })).text());
    assert.deepEqual(
      events.map((e) => e.event),
      [...Array<string>(5).fill('speech.audio.delta'), 'speech.audio.done'],
    );
    assert.match(dataOf(events[0])['audio_data'] as string, /^[A-Za-z0-9+/]+=*$/);
    const done = dataOf(events[5]);
    assert.deepEqual(Object.keys(done), ['type', 'usage']);
    assert.deepEqual(mock.served[0], { path: '/v1/audio/speech', route: '/v1/audio/speech', model: 'voxtral-mini-tts', promptTokens: 101, completionTokens: 10, totalTokens: 111, stream: true });
  });
});

// ---------------------------------------------------------------------------
// behaviour flags
// ---------------------------------------------------------------------------

describe('behaviour flags', () => {
  const encodings = ['gzip', 'deflate', 'br', ...(zstdAvailable ? ['zstd'] : [])];

  for (const enc of encodings) {
    it(`${enc}: JSON and SSE bodies are compressed, decode with zlib, and equal the identity bytes`, async (t) => {
      const plain = await mockFor(t);
      const packed = await mockFor(t);
      for (const body of [chatBody(), chatBody({ stream: true })]) {
        const want = await rawPost(plain.url + CHAT, JSON.stringify(body));
        const got = await rawPost(`${packed.url}/mock/${enc}${CHAT}`, JSON.stringify(body));
        assert.equal(got.headers['content-encoding'], enc);
        assert.notDeepEqual(got.body, want.body);
        assert.equal(decode(enc, got.body).toString('utf8'), want.body.toString('utf8'));
      }
      assert.equal(packed.served.length, 2);
    });
  }

  it('compressed SSE is flushed per event, so each event arrives before the next is written', async (t) => {
    const mock = await mockFor(t);
    const res = await rawPost(`${mock.url}/mock/gzip,delay=30${CHAT}`, JSON.stringify(chatBody({ stream: true })));
    // 5 content events + [DONE] + the gzip trailer, each flushed separately.
    assert.ok(res.chunks.length >= 6, `got ${res.chunks.length} chunks`);
    // The first chunk alone decodes to the complete first event.
    const first = zlib.gunzipSync(res.chunks[0] ?? Buffer.alloc(0), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8');
    assert.match(first, /^data: \{.*"Bonjour".*\}\n\n$/);
  });

  it('fetch decodes gzip, deflate and br bodies transparently', async (t) => {
    const mock = await mockFor(t);
    for (const enc of ['gzip', 'deflate', 'br']) {
      const c = (await (await postJson(`${mock.url}/mock/${enc}${CHAT}`, chatBody())).json()) as Record<string, unknown>;
      assert.equal(c['object'], 'chat.completion');
      const events = parseSse(await (await postJson(`${mock.url}/mock/${enc}${CHAT}`, chatBody({ stream: true }))).text());
      assert.equal(events.at(-1)?.data, '[DONE]');
    }
  });

  it('chunk=1 writes one byte at a time, splitting multi-byte characters', async (t) => {
    const mock = await mockFor(t);
    const res = await rawPost(`${mock.url}/mock/chunk=1${CHAT}`, JSON.stringify(chatBody({ stream: true })));
    const text = res.body.toString('utf8');
    assert.ok(/[é日🙂]/u.test(text), 'stream must contain multi-byte characters');
    // Writes may coalesce in the kernel, but a fair share must arrive separately and
    // some chunk must end inside a UTF-8 sequence.
    assert.ok(res.chunks.length > 50, `got ${res.chunks.length} chunks`);
    assert.ok(res.chunks.some((c) => c.length > 0 && ((c.at(-1) ?? 0) & 0xc0) === 0xc0), 'no chunk ended inside a character');
    assert.equal(parseSse(text).at(-1)?.data, '[DONE]');
    assert.equal(mock.served.length, 1);
  });

  it('chunk=N with gzip chunks the compressed bytes; delay spaces the writes', async (t) => {
    const mock = await mockFor(t);
    const started = Date.now();
    const res = await rawPost(`${mock.url}/mock/gzip,chunk=64,delay=10/v1/embeddings`, JSON.stringify({ model: 'mistral-embed', input: 'x' }));
    const elapsed = Date.now() - started;
    assert.equal(res.headers['content-length'], String(res.body.length));
    const writes = Math.ceil(res.body.length / 64);
    assert.ok(writes >= 3, `body too small: ${res.body.length}`);
    assert.ok(elapsed >= (writes - 1) * 10 - 5, `took ${elapsed} ms for ${writes} writes`);
    assert.equal(json(decode('gzip', res.body))['object'], 'list');
  });

  it('crlf uses CRLF line endings throughout', async (t) => {
    const mock = await mockFor(t);
    for (const body of [chatBody({ stream: true }), { model: 'm', inputs: 'x', stream: true }]) {
      const path = 'messages' in body ? CHAT : '/v1/conversations';
      const text = await (await postJson(`${mock.url}/mock/crlf${path}`, body)).text();
      assert.ok(text.includes('\r\n\r\n'));
      assert.equal(/[^\r]\n/.test(text), false, 'bare LF found');
      assert.ok(parseSse(text).length >= 6);
    }
    assert.equal(mock.served.length, 2);
  });

  it('status=401/429/500/400 reply in Mistral error shapes and are not served', async (t) => {
    const mock = await mockFor(t);
    const expect: Record<number, Record<string, unknown>> = {
      401: { message: 'Unauthorized' },
      429: { object: 'error', message: 'Rate limit exceeded', type: 'rate_limited', param: null, code: '1300' },
      500: { object: 'error', type: 'internal_server_error', param: null },
      400: { object: 'error', type: 'invalid_model', param: null },
    };
    for (const [status, shape] of Object.entries(expect)) {
      for (const stream of [false, true]) {
        const res = await postJson(`${mock.url}/mock/status=${status}${CHAT}`, chatBody({ stream }));
        assert.equal(res.status, Number(status));
        assert.equal(res.headers.get('content-type'), 'application/json');
        const body = (await res.json()) as Record<string, unknown>;
        for (const [k, v] of Object.entries(shape)) assert.deepEqual(body[k], v, `${status} ${k}`);
        assert.equal(typeof body['message'], 'string');
      }
    }
    const unauthorized = (await (await postJson(`${mock.url}/mock/status=401${CHAT}`, chatBody())).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(unauthorized), ['message', 'request_id']);
    assert.equal(mock.served.length, 0);
  });

  it('malformed: garbled JSON body / invalid JSON in place of the usage event; not served', async (t) => {
    const mock = await mockFor(t);
    const res = await postJson(`${mock.url}/mock/malformed${CHAT}`, chatBody());
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /"usage":\{"prompt_tokens":/);
    assert.throws(() => JSON.parse(text));
    const events = parseSse(await (await postJson(`${mock.url}/mock/malformed${CHAT}`, chatBody({ stream: true }))).text());
    assert.equal(events.length, 6);
    assert.throws(() => JSON.parse(events[4]?.data ?? ''));
    assert.ok(events.slice(0, 4).every((e) => !('usage' in dataOf(e))));
    const conv = parseSse(await (await postJson(`${mock.url}/mock/malformed/v1/conversations`, { model: 'm', inputs: 'x', stream: true })).text());
    assert.throws(() => JSON.parse(conv.at(-1)?.data ?? ''));
    assert.equal(mock.served.length, 0);
  });

  it('truncated JSON: content-length promises more than arrives, then the socket dies', async (t) => {
    const mock = await mockFor(t);
    const res = await rawPost(`${mock.url}/mock/truncated${CHAT}`, JSON.stringify(chatBody()));
    assert.ok(res.error, 'expected an abnormal end');
    const promised = Number(res.headers['content-length']);
    assert.ok(res.body.length > 0 && res.body.length < promised, `${res.body.length} of ${promised}`);
    await assert.rejects(async () => (await postJson(`${mock.url}/mock/truncated${CHAT}`, chatBody())).text());
    assert.equal(mock.served.length, 0);
  });

  it('truncated SSE: some content chunks, never the usage chunk, then the socket dies', async (t) => {
    const mock = await mockFor(t);
    const res = await rawPost(`${mock.url}/mock/truncated${CHAT}`, JSON.stringify(chatBody({ stream: true })));
    assert.ok(res.error, 'expected an abnormal end');
    const events = parseSse(res.body.toString('utf8'));
    assert.equal(events.length, 4);
    assert.ok(events.every((e) => !('usage' in dataOf(e))));
    // Compressed: the content that was sent is still decodable (flushed before the cut).
    const gz = await rawPost(`${mock.url}/mock/truncated,gzip/v1/conversations`, JSON.stringify({ model: 'm', inputs: 'x', stream: true }));
    assert.ok(gz.error);
    const partial = zlib.gunzipSync(gz.body, { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString('utf8');
    assert.deepEqual(
      parseSse(partial).map((e) => e.event),
      ['conversation.response.started', ...Array<string>(5).fill('message.output.delta')],
    );
    const viaFetch = await postJson(`${mock.url}/mock/truncated${CHAT}`, chatBody({ stream: true }));
    await assert.rejects(viaFetch.text());
    assert.equal(mock.served.length, 0);
  });

  it('nousage: 200 without usage anywhere; not served', async (t) => {
    const mock = await mockFor(t);
    const body = (await (await postJson(`${mock.url}/mock/nousage${CHAT}`, chatBody())).json()) as Record<string, unknown>;
    assert.equal('usage' in body, false);
    const stream = await (await postJson(`${mock.url}/mock/nousage${CHAT}`, chatBody({ stream: true }))).text();
    assert.equal(stream.includes('usage'), false);
    assert.ok(stream.includes('"finish_reason":"stop"'));
    const speech = await (await postJson(`${mock.url}/mock/nousage/v1/audio/speech`, { model: 'x', input: 'y', stream: true })).text();
    assert.equal(speech.includes('usage'), false);
    assert.equal(mock.served.length, 0);
  });

  it('hang: streams until the client aborts, and records how far it got', async (t) => {
    const mock = await mockFor(t);
    const controller = new AbortController();
    const res = await postJson(`${mock.url}/mock/hang${CHAT}`, chatBody({ stream: true }), { signal: controller.signal });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    const decoder = new TextDecoder();
    while (parseSse(text).length < 3) {
      const { value, done } = await reader.read();
      assert.equal(done, false);
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();
    await reader.read().catch(() => undefined);
    const [d] = await mock.waitForDisconnects(1);
    assert.equal(d?.path, `/mock/hang${CHAT}`);
    assert.ok((d?.chunksWritten ?? 0) >= 3, `chunksWritten ${d?.chunksWritten}`);
    assert.ok(parseSse(text).every((e) => !('usage' in dataOf(e))));
    assert.equal(mock.served.length, 0);
  });

  it('hang: cancelling the body (no abort) also reaches the server', async (t) => {
    const mock = await mockFor(t);
    const res = await postJson(`${mock.url}/mock/hang/v1/conversations`, { model: 'm', inputs: 'x', stream: true });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    await reader.cancel();
    const [d] = await mock.waitForDisconnects(1);
    assert.equal(d?.path, '/mock/hang/v1/conversations');
  });

  it('hang on a non-streamed request: headers, then nothing until the client gives up', async (t) => {
    const mock = await mockFor(t);
    const res = await postJson(`${mock.url}/mock/hang${CHAT}`, chatBody(), { signal: AbortSignal.timeout(200) });
    assert.equal(res.status, 200);
    await assert.rejects(res.text());
    assert.deepEqual(await mock.waitForDisconnects(1), [{ path: `/mock/hang${CHAT}`, chunksWritten: 0 }]);
    assert.equal(mock.served.length, 0);
  });

  it('big=N streams N content chunks of about 1 KiB each', async (t) => {
    const mock = await mockFor(t);
    const res = await rawPost(`${mock.url}/mock/big=200${CHAT}`, JSON.stringify(chatBody({ stream: true })));
    const events = parseSse(res.body.toString('utf8'));
    assert.equal(events.length, 201);
    const sizes = events.slice(0, 200).map((e) => Buffer.byteLength(e.data));
    assert.ok(sizes.every((s) => s > 1000 && s < 1400), `sizes ${Math.min(...sizes)}..${Math.max(...sizes)}`);
    assert.ok(res.body.length > 200 * 1024);
    assert.equal(mock.served.length, 1);
  });

  it('nocontenttype omits Content-Type', async (t) => {
    const mock = await mockFor(t);
    for (const body of [chatBody(), chatBody({ stream: true })]) {
      const res = await rawPost(`${mock.url}/mock/nocontenttype${CHAT}`, JSON.stringify(body));
      assert.equal(res.headers['content-type'], undefined);
      assert.equal(res.status, 200);
    }
  });

  it('path flags override defaults; unknown flags are a loud 400', async (t) => {
    const mock = await mockFor(t, { defaults: 'gzip,events=2' });
    const a = await rawPost(mock.url + CHAT, JSON.stringify(chatBody({ stream: true })));
    assert.equal(a.headers['content-encoding'], 'gzip');
    assert.equal(parseSse(decode('gzip', a.body).toString('utf8')).length, 3);
    const b = await rawPost(`${mock.url}/mock/br,events=4${CHAT}`, JSON.stringify(chatBody({ stream: true })));
    assert.equal(b.headers['content-encoding'], 'br');
    assert.equal(parseSse(decode('br', b.body).toString('utf8')).length, 5);
    const c = await rawPost(`${mock.url}/mock/identity${CHAT}`, JSON.stringify(chatBody()));
    assert.equal(c.headers['content-encoding'], undefined);
    const bad = await postJson(`${mock.url}/mock/gzpi${CHAT}`, chatBody());
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { message: string }).message, /unknown mock flag "gzpi"/);
    await assert.rejects(startMockMistral({ defaults: 'nope' }), /unknown mock flag/);
  });
});

// ---------------------------------------------------------------------------
// determinism and bookkeeping
// ---------------------------------------------------------------------------

describe('determinism and served bookkeeping', () => {
  const sequence: [string, string][] = [
    [CHAT, JSON.stringify(chatBody())],
    [CHAT, JSON.stringify(chatBody({ stream: true }))],
    ['/mock/gzip/v1/chat/completions', JSON.stringify(chatBody({ stream: true }))],
    ['/mock/br/v1/embeddings', JSON.stringify({ model: 'mistral-embed', input: ['a'] })],
    ['/v1/conversations', JSON.stringify({ model: 'm', inputs: 'x', stream: true })],
    ['/v1/audio/speech', JSON.stringify({ model: 'tts', input: 'x', stream: true })],
    ['/v1/moderations', JSON.stringify({ model: 'mod', input: ['x'] })],
  ];

  it('two servers in the same counter state send byte-identical bodies', async (t) => {
    const one = await mockFor(t);
    const two = await mockFor(t);
    for (const [path, body] of sequence) {
      const a = await rawPost(one.url + path, body);
      const b = await rawPost(two.url + path, body);
      assert.equal(a.status, 200);
      assert.ok(a.body.equals(b.body), `bodies differ for ${path}`);
    }
    assert.deepEqual(one.served, two.served);
  });

  it('the same request on one server differs only by the counter (ids and usage)', async (t) => {
    const mock = await mockFor(t);
    const first = (await rawPost(mock.url + CHAT, JSON.stringify(chatBody()))).body.toString('utf8');
    const second = (await rawPost(mock.url + CHAT, JSON.stringify(chatBody()))).body.toString('utf8');
    assert.notEqual(first, second);
    const normalise = (s: string): string => s.replace(/mock-\d{6}/g, 'mock-N').replace(/"usage":\{[^}]*\}\}/, '"usage":U}');
    assert.equal(normalise(first), normalise(second));
  });

  it('served has one entry per usage-bearing 2xx, in order, with unique prompt tokens', async (t) => {
    const mock = await mockFor(t);
    const paths = [CHAT, '/mock/status=500/v1/chat/completions', '/mock/nousage/v1/chat/completions', '/v1/embeddings', '/v1/audio/speech', CHAT];
    for (const path of paths) await (await postJson(mock.url + path, chatBody({ input: 'x' }))).arrayBuffer();
    await (await postJson(mock.url + CHAT, chatBody({ stream: true }))).text();
    const served = await mock.waitForServed(4);
    assert.deepEqual(
      served.map((s) => [s.route, s.stream]),
      [
        [CHAT, false],
        ['/v1/embeddings', false],
        [CHAT, false],
        [CHAT, true],
      ],
    );
    assert.equal(new Set(served.map((s) => s.promptTokens)).size, served.length);
    assert.equal(mock.requests.length, paths.length + 1);
    assert.equal(mock.requests[0]?.method, 'POST');
  });
});

// ---------------------------------------------------------------------------
// standalone mode and child-process helpers
// ---------------------------------------------------------------------------

describe('standalone mode', () => {
  it('prints one {"url"} line, serves, and exits on SIGTERM', { timeout: 30_000 }, async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/mock-mistral.ts', '--port', '0'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`mock exited early with ${code}`)));
      });
      const parsed = JSON.parse(line) as { url: string };
      assert.deepEqual(Object.keys(parsed), ['url']);
      assert.match(parsed.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await postJson(parsed.url + CHAT, chatBody());
      assert.equal(((await res.json()) as Record<string, unknown>)['object'], 'chat.completion');
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

describe('run-app helpers', () => {
  let dir: string;
  let mock: MockMistral;
  before(async () => {
    dir = await tempDir();
    mock = await startMockMistral();
  });
  after(async () => {
    await mock.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runApp runs an .mjs with bare imports from the repo and a scrubbed env', async (t) => {
    // Variables the runner might carry that must not reach the app.
    process.env['MISTRAL_USAGE_LEAK_TEST'] = '1';
    process.env['NODE_OPTIONS'] = '--no-warnings';
    t.after(() => {
      delete process.env['MISTRAL_USAGE_LEAK_TEST'];
      delete process.env['NODE_OPTIONS'];
    });
    const result = await runApp({
      cwd: dir,
      preload: false,
      env: { MOCK_URL: mock.url, KEEP_ME: 'yes' },
      source: `
        import { createParser } from 'eventsource-parser';
        const res = await fetch(process.env.MOCK_URL + '/v1/chat/completions', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [] }) });
        const body = await res.json();
        console.log(JSON.stringify({ parser: typeof createParser, model: body.model, nodeOptions: process.env.NODE_OPTIONS ?? null,
          usageVars: Object.keys(process.env).filter((k) => k.startsWith('MISTRAL_USAGE_')), keep: process.env.KEEP_ME }));
      `,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { parser: 'function', model: 'm', nodeOptions: null, usageVars: [], keep: 'yes' });
  });

  it('runNode reports timeouts clearly and passes stdin', async () => {
    const slow = await runNode(['-e', 'setTimeout(() => {}, 60000)'], { cwd: dir, timeoutMs: 300 });
    assert.equal(slow.timedOut, true);
    assert.equal(slow.signal, 'SIGKILL');
    assert.match(slow.stderr, /killed with SIGKILL after 300 ms timeout/);
    const echo = await runNode(['-e', 'process.stdin.pipe(process.stdout)'], { cwd: dir, input: 'héllo' });
    assert.equal(echo.stdout, 'héllo');
    assert.equal(echo.timedOut, false);
  });

  it('readCsv parses quoted fields, CRLF, and keeps the raw text', async () => {
    const file = join(dir, 'log.csv');
    const raw = 'TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\r\n2026-01-01T00:00:00.000Z,"a,""b""",1,2,3\n\n2026-01-01T00:00:01.000Z,m,4,5,9\n';
    await writeFile(file, raw);
    const csv = await readCsv(file);
    assert.equal(csv.header, 'TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens');
    assert.deepEqual(csv.rows, [
      ['2026-01-01T00:00:00.000Z', 'a,"b"', '1', '2', '3'],
      ['2026-01-01T00:00:01.000Z', 'm', '4', '5', '9'],
    ]);
    assert.equal(csv.raw, raw);
    assert.deepEqual(parseCsv('a,b'), [['a', 'b']]);
    await assert.rejects(readCsv(join(dir, 'missing.csv')), { code: 'ENOENT' });
  });
});
