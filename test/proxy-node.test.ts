/**
 * A Node child under `mistral-usage run` has the preload AND the proxy: each call must give exactly
 * one row, whichever side sees it. To prove which side records, the child's preload writes to its
 * own file (preload.csv) while the run's proxy writes mistral_usage_log.csv: calls that go through
 * the proxy (fetch with NODE_USE_ENV_PROXY on Node 24, https on Node 24, axios on any Node) must be
 * in the proxy's file only; calls that bypass it (an app's own undici Agent, Node 20's fetch, which
 * ignores proxy variables) in the preload's only.
 *
 * The mock is a Mistral host here through MISTRAL_USAGE_HOSTS (the proxy can only intercept what
 * counts as Mistral, and the bypassing calls must reach it directly).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { cli } from './cli/cli-helpers.js';
import { linkNodeModules, mockFor, readLogRows, tempDirFor } from './support/run-app.js';
import { tlsMockFor } from './support/tls-mock.js';

/** A Node 24 binary: this machine's, or the one running the tests (CI's second pass). */
const NODE24 = existsSync('/opt/nodes/n24/package/bin/node')
  ? '/opt/nodes/n24/package/bin/node'
  : Number(process.versions.node.split('.')[0]) >= 24
    ? process.execPath
    : '/opt/nodes/n24/package/bin/node';
const NODE20_PLUS = process.execPath;

/** One call per way of sending, each with its own model so that the rows say who sent them. */
const APP = `
import https from "node:https";
import axios from "axios";
import { Agent, fetch as undiciFetch } from "undici";
const url = process.env.MOCK_URL + "/v1/chat/completions";
const body = (model) => JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] });
const headers = { "content-type": "application/json" };
const ways = process.argv.slice(2);
for (const way of ways) {
  const model = "m-" + way;
  if (way === "fetch") await (await fetch(url, { method: "POST", headers, body: body(model) })).json();
  if (way === "fetch-stream") await (await fetch(url, { method: "POST", headers, body: JSON.stringify({ ...JSON.parse(body(model)), stream: true }) })).text();
  if (way === "own-agent") await (await undiciFetch(url, { method: "POST", headers, body: body(model), dispatcher: new Agent() })).json();
  if (way === "axios") await axios.post(url, JSON.parse(body(model)));
  if (way === "https") await new Promise((resolve, reject) => {
    const req = https.request(url, { method: "POST", headers }, (res) => { res.resume(); res.on("end", resolve); });
    req.on("error", reject);
    req.end(body(model));
  });
}
console.log("done", ways.join(" "));
`;

async function runNodeApp(t: TestContext, node: string, ways: string[], plainHttp = false): Promise<{ proxy: string[]; preload: string[]; stderr: string }> {
  const dir = await tempDirFor(t, 'mul-proxy-node-');
  const { mock, caFile } = plainHttp ? { mock: await mockFor(t), caFile: '' } : await tlsMockFor(t, dir);
  await writeFile(join(dir, 'app.mjs'), APP);
  await linkNodeModules(dir);
  // The child's preload gets its own log; the run's proxy keeps the run's.
  const command = ['sh', '-c', 'MISTRAL_USAGE_LOG="$PWD/preload.csv" exec "$0" app.mjs "$@"', node, ...ways];
  const r = await cli(['run', '--', ...command], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile, MISTRAL_USAGE_HOSTS: mock.hostPort, MOCK_URL: mock.url } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `done ${ways.join(' ')}\n`);
  assert.equal(mock.served.length, ways.length);
  const models = async (file: string): Promise<string[]> => (existsSync(file) ? (await readLogRows(file)).map((row) => row[1] ?? '').sort() : []);
  return { proxy: await models(join(dir, 'mistral_usage_log.csv')), preload: await models(join(dir, 'preload.csv')), stderr: r.stderr };
}

describe('run with a Node child: exactly one row per call, whichever side sees it', () => {
  test('Node 24: fetch and https with NODE_USE_ENV_PROXY, and axios, go through the proxy and are its rows; an own undici Agent bypasses it and is the preload’s', { skip: !existsSync(NODE24) && 'no Node 24 binary here' }, async (t) => {
    const { proxy, preload, stderr } = await runNodeApp(t, NODE24, ['fetch', 'fetch-stream', 'https', 'axios', 'own-agent']);
    assert.deepEqual(proxy, ['m-axios', 'm-fetch', 'm-fetch-stream', 'm-https'], stderr);
    assert.deepEqual(preload, ['m-own-agent'], stderr);
  });

  test("this Node (20 in CI's first pass): fetch ignores proxy variables and is the preload's row; axios is the proxy's", async (t) => {
    const { proxy, preload, stderr } = await runNodeApp(t, NODE20_PLUS, ['fetch', 'axios', 'own-agent']);
    const envProxy = Number(process.versions.node.split('.')[0]) >= 24 || /^22\.(2[1-9]|[3-9]\d)/.test(process.versions.node);
    assert.deepEqual(proxy, envProxy ? ['m-axios', 'm-fetch'] : ['m-axios'], stderr);
    assert.deepEqual(preload, envProxy ? ['m-own-agent'] : ['m-fetch', 'm-own-agent'], stderr);
  });

  test('Node 24 tunnels plain http:// URLs through CONNECT too: the proxy sees HTTP inside the tunnel and logs it', { skip: !existsSync(NODE24) && 'no Node 24 binary here' }, async (t) => {
    const { proxy, preload, stderr } = await runNodeApp(t, NODE24, ['fetch', 'fetch-stream', 'axios'], true);
    assert.deepEqual(proxy, ['m-axios', 'm-fetch', 'm-fetch-stream'], stderr);
    assert.deepEqual(preload, [], stderr);
    assert.doesNotMatch(stderr, /refused the run's certificate/);
  });
});
