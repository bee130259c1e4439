/**
 * `mistral-usage proxy` end to end: the real command, real clients pointing their base URL at it,
 * the TLS mock as its upstream.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cli } from './cli/cli-helpers.js';
import { startProxy } from './support/proxy-command.js';
import { readLogRows, rowTail, tempDirFor } from './support/run-app.js';
import { PYTHON, tlsMockFor } from './support/tls-mock.js';

const CHAT = { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] };

describe('proxy', () => {
  test('base URL: requests, httpx and curl are forwarded and logged; SIGTERM stops it with every row written', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-cmd-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    const proxy = await startProxy(t, dir, ['--upstream', mock.url], { NODE_EXTRA_CA_CERTS: caFile });
    assert.match(proxy.firstLine, /^listening on http:\/\/127\.0\.0\.1:\d+ \(forwarding to https:\/\/127\.0\.0\.1:\d+\); point clients' base URL at http:\/\/127\.0\.0\.1:\d+, e\.g\. OPENAI_BASE_URL=http:\/\/127\.0\.0\.1:\d+\/v1$/);
    await writeFile(
      join(dir, 'base.py'),
      `import sys, requests, httpx
base = sys.argv[1]
chat = ${JSON.stringify(CHAT)}
r = requests.post(base + "/v1/chat/completions", json=chat, headers={"authorization": "Bearer k"}); r.raise_for_status()
print(r.json()["model"])
with httpx.stream("POST", base + "/mock/gzip/v1/chat/completions", json=dict(chat, stream=True)) as r:
    print(sum(1 for line in r.iter_lines() if line.startswith("data:")))
`,
    );
    const py = await cli(['run', '--', PYTHON, 'base.py', proxy.url], { cwd: dir, env: { MISTRAL_USAGE_LOG: 'unused.csv' } });
    assert.equal(py.stdout, 'mistral-small-latest\n6\n', py.stderr);
    const curl = spawn('curl', ['-sS', '--fail', `${proxy.url}/v1/embeddings`, '-H', 'content-type: application/json', '-d', '{"model":"mistral-embed","input":["a"]}']);
    await new Promise((resolve) => curl.once('exit', resolve));
    assert.equal(mock.requests[0]?.headers['authorization'], 'Bearer k', 'the Authorization header is passed on');
    assert.equal(mock.requests[0]?.headers['host'], mock.hostPort, 'Host names the upstream');
    const stopped = await proxy.stop();
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /stopped \(SIGTERM\)/);
    assert.deepEqual((await readLogRows(join(dir, 'mistral_usage_log.csv'))).map((r) => r.slice(1).join(',')), mock.served.map(rowTail));
    assert.equal(mock.served.length, 3);
  });

  test('forwards only to its upstream: CONNECT and absolute-form requests get 405', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-cmd-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    const proxy = await startProxy(t, dir, ['--upstream', mock.url], { NODE_EXTRA_CA_CERTS: caFile });
    const { port } = new URL(proxy.url);
    const connectReply = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
      let text = '';
      socket.on('data', (c) => (text += c.toString()));
      socket.on('close', () => resolve(text));
    });
    assert.match(connectReply, /^HTTP\/1\.1 405 /);
    const status = await new Promise<number | undefined>((resolve) => {
      request({ host: '127.0.0.1', port, path: 'http://example.com/v1/chat/completions', method: 'POST' }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).end('{}');
    });
    assert.equal(status, 405);
    assert.equal(mock.requests.length, 0);
    assert.equal((await proxy.stop()).code, 0);
  });

  test('the app cancels a stream: the upstream request is cancelled at once; an unreachable upstream is a 502', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-cmd-');
    const { mock, caFile } = await tlsMockFor(t, dir, { defaults: 'delay=100,events=50' });
    const proxy = await startProxy(t, dir, ['--upstream', mock.url], { NODE_EXTRA_CA_CERTS: caFile });
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, stream: true }) });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    const [gone] = await mock.waitForDisconnects(1, 3000);
    assert.ok((gone?.chunksWritten ?? 99) < 10, `stopped early: ${gone?.chunksWritten} chunks`);

    const dead = await startProxy(t, dir, ['--upstream', 'https://127.0.0.1:9'], {});
    const refused = await fetch(`${dead.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    assert.equal(refused.status, 502);
    assert.match(await refused.text(), /cannot reach 127\.0\.0\.1:9: ECONNREFUSED/);
    await dead.stop('SIGINT');
    const stopped = await proxy.stop('SIGINT');
    assert.equal(stopped.code, 0);
  });

  test('SIGTERM during a stream: it stops accepting, the stream finishes, its row is written, then it exits 0', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-cmd-');
    const { mock, caFile } = await tlsMockFor(t, dir, { defaults: 'delay=40,events=15' });
    const proxy = await startProxy(t, dir, ['--upstream', mock.url], { NODE_EXTRA_CA_CERTS: caFile });
    const res = await fetch(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, stream: true }) });
    const reader = res.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const stopping = proxy.stop('SIGTERM');
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.match(text, /data: \[DONE\]/, 'the stream ran to its end');
    const stopped = await stopping;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual((await readLogRows(join(dir, 'mistral_usage_log.csv'))).map((r) => r.slice(1).join(',')), mock.served.map(rowTail));
    assert.equal(mock.served.length, 1);
  });

  test('usage errors: a non-loopback --listen needs --allow-remote; bad --listen and --upstream', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-cmd-');
    const remote = await cli(['proxy', '--listen', '0.0.0.0:0'], { cwd: dir });
    assert.equal(remote.code, 2);
    assert.match(remote.stderr, /--listen 0\.0\.0\.0 is not a loopback address; add --allow-remote/);
    const badListen = await cli(['proxy', '--listen', 'nope'], { cwd: dir });
    assert.equal(badListen.code, 2);
    const badUpstream = await cli(['proxy', '--upstream', 'ftp://x'], { cwd: dir });
    assert.equal(badUpstream.code, 2);
    assert.match(badUpstream.stderr, /--upstream must be an http:\/\/ or https:\/\/ URL/);
  });
});
