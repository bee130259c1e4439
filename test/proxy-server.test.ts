/**
 * The proxy server in process, with real sockets: what is awkward to reach through a client
 * library (WebSocket upgrades, the user's own corporate proxy on the way out, hop-by-hop headers).
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import tls from 'node:tls';
import { CertificateAuthority } from '../src/proxy/ca.js';
import { createInterceptingProxy } from '../src/proxy/server.js';
import { createUpstream } from '../src/proxy/upstream.js';
import type { ObserverFactory } from '../src/taps/exchange.js';
import { cli } from './cli/cli-helpers.js';
import { readLogRows, rowTail, tempDirFor } from './support/run-app.js';
import { PYTHON, tlsMockFor } from './support/tls-mock.js';

const CREDENTIAL = 'mu:secret';

/** A TLS server on 127.0.0.1 that accepts WebSocket-style upgrades and echoes what follows. */
async function echoUpgradeServer(t: TestContext, serverCa: CertificateAuthority): Promise<{ port: number; heads: IncomingMessage[] }> {
  const heads: IncomingMessage[] = [];
  const sockets: net.Socket[] = [];
  const server = createTlsServer(serverCa.leafFor('127.0.0.1'));
  server.on('upgrade', (req: IncomingMessage, socket: net.Socket) => {
    heads.push(req);
    sockets.push(socket);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, heads };
}

/** CONNECT through the proxy, then TLS to `host` trusting `ca`. */
async function tunnel(proxyPort: number, host: string, port: number, ca: string): Promise<tls.TLSSocket> {
  const raw = net.connect(proxyPort, '127.0.0.1');
  raw.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\nProxy-Authorization: Basic ${Buffer.from(CREDENTIAL).toString('base64')}\r\n\r\n`);
  await new Promise<void>((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer): void => {
      text += c.toString('latin1');
      if (!text.includes('\r\n\r\n')) return;
      raw.off('data', onData);
      if (text.startsWith('HTTP/1.1 200')) resolve();
      else reject(new Error(text));
    };
    raw.on('data', onData);
  });
  const secure = tls.connect({ socket: raw, servername: host, ca, ALPNProtocols: ['h2', 'http/1.1'] });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}

test('WebSocket upgrades to a Mistral host are piped through both ways; clients offering h2 get http/1.1', async (t) => {
  const serverCa = new CertificateAuthority({ permitted: ['127.0.0.1'] });
  const upstreamServer = await echoUpgradeServer(t, serverCa);
  const runCa = new CertificateAuthority({ permitted: ['mistral.ai'] });
  const observed: string[] = [];
  const observe: ObserverFactory = (origin, path, method) => {
    observed.push(`${method} ${origin}${path}`);
    return undefined;
  };
  const proxy = createInterceptingProxy({
    observe,
    upstream: createUpstream({ extraCaPem: serverCa.certPem }),
    warn: (m) => assert.fail(m),
    forward: { ca: runCa, credential: CREDENTIAL, intercepts: (host) => host.endsWith('mistral.ai'), redirect: new URL(`https://127.0.0.1:${upstreamServer.port}`) },
  });
  const { port } = await proxy.listen('127.0.0.1', 0);
  t.after(() => proxy.close());

  const socket = await tunnel(port, 'api.mistral.ai', 443, runCa.certPem);
  assert.equal(socket.alpnProtocol, 'http/1.1');
  socket.write('GET /v1/audio/realtime HTTP/1.1\r\nHost: api.mistral.ai\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  let received = '';
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (received.includes('\r\n\r\n') && !received.includes('ping')) socket.write('ping-frame');
      if (received.includes('ping-frame')) resolve();
    });
  });
  assert.match(received, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.equal(upstreamServer.heads[0]?.headers['upgrade'], 'websocket');
  assert.equal(upstreamServer.heads[0]?.headers['host'], `127.0.0.1:${upstreamServer.port}`, '--upstream: Host names the upstream');
  socket.destroy();
});

test("the proxy's own leg goes through the user's HTTPS_PROXY (CONNECT), and still verifies the server", async (t) => {
  const dir = await tempDirFor(t, 'mul-proxy-corp-');
  const { mock, caFile } = await tlsMockFor(t, dir);
  // The user's corporate proxy: a plain CONNECT relay that counts what it relays.
  const relayed: string[] = [];
  const corp = createHttpServer();
  corp.on('connect', (req: IncomingMessage, socket: net.Socket) => {
    relayed.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const out = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      out.pipe(socket).pipe(out);
    });
    out.on('error', () => socket.destroy());
    socket.on('error', () => out.destroy());
  });
  await new Promise<void>((resolve) => corp.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    corp.closeAllConnections();
    corp.close();
  });
  const corpUrl = `http://127.0.0.1:${(corp.address() as AddressInfo).port}`;
  await writeFile(join(dir, 'app.py'), 'import requests\nrequests.post("https://api.mistral.ai/v1/chat/completions", json={"model": "mistral-small-latest", "messages": []}).raise_for_status()\nprint("ok")\n');
  const r = await cli(['run', '--upstream', mock.url, '--', PYTHON, 'app.py'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile, HTTPS_PROXY: corpUrl, https_proxy: corpUrl } });
  assert.equal(r.stdout, 'ok\n', r.stderr);
  assert.deepEqual(relayed, [mock.hostPort]);
  assert.deepEqual((await readLogRows(join(dir, 'mistral_usage_log.csv'))).map((row) => row.slice(1).join(',')), mock.served.map(rowTail));

  // Without the test CA, the proxy's leg refuses the server: the app gets a 502, nothing is logged.
  const refused = await cli(['run', '--upstream', mock.url, '--', PYTHON, '-c', 'import requests; print(requests.post("https://api.mistral.ai/v1/chat/completions", json={}).status_code)'], { cwd: dir, env: { MISTRAL_USAGE_LOG: 'refused.csv' } });
  assert.equal(refused.stdout, '502\n', refused.stderr);
});
