/**
 * What the undici tap asks of undici: the per-request channels (headers, every body chunk, the end)
 * are subscribed only while Mistral calls are about, so that the rest of an app's traffic makes
 * undici build and publish nothing for us (issue #13: non-Mistral traffic pays nothing measurable).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { mockFor, readCsv, runApp, tempDirFor } from './support/run-app.js';

const CHANNELS = ['undici:request:headers', 'undici:request:bodyChunkReceived', 'undici:request:trailers', 'undici:request:error'];

describe('undici per-request channels', () => {
  for (const api of ['fetch', 'undici.request'] as const) {
    it(`${api}: subscribed for a Mistral call, given up at the next other request, subscribed again for the next Mistral call`, async (t) => {
      const dir = await tempDirFor(t, 'mul-channels-');
      const mock = await mockFor(t);
      // Another host: a plain server that is not in MISTRAL_USAGE_HOSTS.
      const other = createServer((_req, res) => res.end('{"ok":true}'));
      await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
      t.after(() => other.close());
      const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}/v1/chat/completions`;
      const log = `${dir}/usage.csv`;
      const call = api === 'fetch'
        ? `(url, body) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.text())`
        : `async (url, body) => { const { request } = await import('undici'); const r = await request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body }); return r.body.text(); }`;
      const source = `
import dc from 'node:diagnostics_channel';
const names = ${JSON.stringify(CHANNELS)};
const state = () => names.map((n) => dc.hasSubscribers(n) ? 1 : 0).join('');
const call = ${call};
const chat = ${JSON.stringify(`${mock.url}/v1/chat/completions`)};
const body = JSON.stringify({ model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] });
console.log('start', state());
await call(${JSON.stringify(otherUrl)}, '{}');
console.log('after other', state());
await call(chat, body);
console.log('after mistral', state());
await call(${JSON.stringify(otherUrl)}, '{}');
console.log('after other', state());
await call(chat, body);
console.log('after mistral', state());
`;
      const result = await runApp({ cwd: dir, source, preload: true, env: { ...process.env, NODE_OPTIONS: '', MISTRAL_USAGE_HOSTS: mock.hostPort, MISTRAL_USAGE_LOG: log } });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, ['start 0000', 'after other 0000', 'after mistral 1111', 'after other 0000', 'after mistral 1111', ''].join('\n'));
      assert.equal((await readCsv(log)).rows.length, 2);
      assert.equal(result.stderr, '');
    });
  }
});
