/**
 * `mistral-usage run` for any language, end to end: real Python (Debian's requests and httpx) and
 * curl run under `run`, call https://api.mistral.ai, and `--upstream` sends those calls to the
 * loopback mock over TLS (its certificate from a CA made here, trusted by `run` through
 * NODE_EXTRA_CA_CERTS, as a company root would be). Every row must be what the mock served.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { cli } from './cli/cli-helpers.js';
import { readCsv, readLogRows, repoRoot, rowTail, tempDirFor } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';
import { PYTHON, tlsMockFor } from './support/tls-mock.js';

const CHAT = { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] };

const PYTHON_APP = `
import json, sys, requests, httpx
base = sys.argv[1]
chat = ${JSON.stringify(CHAT)}
r = requests.post(base + "/v1/chat/completions", json=chat); r.raise_for_status()
print("requests json", r.json()["choices"][0]["message"]["content"])
with requests.post(base + "/v1/chat/completions", json=dict(chat, stream=True), stream=True) as r:
    print("requests sse", sum(1 for line in r.iter_lines() if line.startswith(b"data:")))
r = requests.post(base + "/mock/gzip/v1/chat/completions", json=dict(chat, model="mistral-large-latest")); r.raise_for_status()
print("requests gzip", r.json()["model"])
with requests.Session() as s:  # keep-alive: two calls through one tunnel
    for i in range(2):
        s.post(base + "/v1/embeddings", json={"model": "mistral-embed", "input": ["a", "b"]}).raise_for_status()
print("requests session ok")
r = httpx.post(base + "/v1/chat/completions", json=dict(chat, model="open-mistral-nemo")); r.raise_for_status()
print("httpx json", r.json()["model"])
with httpx.stream("POST", base + "/mock/deflate/v1/chat/completions", json=dict(chat, stream=True)) as r:
    print("httpx sse", sum(1 for line in r.iter_lines() if line.startswith("data:")))
with httpx.Client() as c:
    c.post(base + "/v1/fim/completions", json={"model": "codestral-latest", "prompt": "def f():"}).raise_for_status()
print("httpx client ok")
`;

function summary(r: RunResult): string {
  return r.stderr.split('\n').filter((l) => l.startsWith('mistral-usage: ')).join('\n');
}

/** The model and counts of each row (the timestamp aside), as rowTail gives them for the mock. */
function tails(rows: string[][]): string[] {
  return rows.map((row) => row.slice(1).join(','));
}

describe('run: Python and curl through the proxy', () => {
  test('requests and httpx: JSON, streams, gzip and deflate, keep-alive; one row per call, exactly what the API returned', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    await writeFile(join(dir, 'app.py'), PYTHON_APP);
    const r = await cli(['run', '--upstream', mock.url, '--', PYTHON, 'app.py', 'https://api.mistral.ai'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'requests json Bonjour café à 日本 🙂 naïve fin.\nrequests sse 6\nrequests gzip mistral-large-latest\nrequests session ok\nhttpx json open-mistral-nemo\nhttpx sse 6\nhttpx client ok\n',
    );
    assert.equal(mock.served.length, 8);
    assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), mock.served.map(rowTail));
    assert.match(summary(r), /^mistral-usage: 8 calls logged to /);
    assert.doesNotMatch(r.stderr, /mistral-usage-log: /, 'no warnings');
    // Nothing of the run is left behind: the CA bundle's folder is gone.
    const bundle = /SSL_CERT_FILE=(\S+)/.exec((await cli(['run', '--', 'sh', '-c', 'echo SSL_CERT_FILE=$SSL_CERT_FILE'], { cwd: dir })).stdout)?.[1];
    assert.ok(bundle !== undefined && !existsSync(bundle), `the bundle ${bundle} is removed at exit`);
  });

  test('curl: JSON (compressed) and a stream (-N), one row each', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    const body = JSON.stringify(CHAT).replace(/"/g, '\\"');
    const script = [
      `curl -sS --fail --compressed https://api.mistral.ai/mock/gzip/v1/chat/completions -H 'content-type: application/json' -d "${body}" | head -c 20; echo`,
      `curl -sS --fail -N https://api.mistral.ai/v1/chat/completions -H 'content-type: application/json' -d "$(echo '${JSON.stringify({ ...CHAT, stream: true })}')" | grep -c '^data:'`,
    ].join('\n');
    await writeFile(join(dir, 'calls.sh'), script);
    const r = await cli(['run', '--upstream', mock.url, '--', 'sh', 'calls.sh'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{"id":"cmpl-mock-000\n6\n');
    assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), mock.served.map(rowTail));
    assert.equal(mock.served.length, 2);
  });

  test("the guide's own Method 2 script, unchanged: our CSV has exactly the rows of its hand-written CSV", async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    const script = await readFile(join(repoRoot, 'test', 'fixtures', 'guide-method-2.py'), 'utf8');
    assert.match(script, /MISTRAL_API_URL = "https:\/\/api\.mistral\.ai\/v1\/chat\/completions"/);
    await writeFile(join(dir, 'method2.py'), script);
    // The script writes mistral_usage_log.csv itself: ours goes next to it.
    const r = await cli(['run', '--upstream', mock.url, '--', PYTHON, 'method2.py'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile, MISTRAL_USAGE_LOG: 'ours.csv' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Logged usage to mistral_usage_log\.csv/);
    const theirs = await readCsv(join(dir, 'mistral_usage_log.csv'));
    const ours = await readLogRows(join(dir, 'ours.csv'));
    assert.equal(theirs.rows.length, 1);
    assert.deepEqual(tails(ours), tails(theirs.rows));
    assert.equal(ours[0]?.[1], 'mistral-small-latest');
  });
});

describe('run: the proxy is private, selective and honest about what it cannot see', () => {
  test('no credential or a wrong one: 407; the run credential: through', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    const url = 'https://api.mistral.ai/v1/chat/completions';
    const data = JSON.stringify(CHAT);
    await writeFile(
      join(dir, 'auth.sh'),
      [
        'addr=${HTTPS_PROXY#*@}',
        `curl -s -o /dev/null -w '%{http_connect}\\n' -x "http://$addr" ${url} -d '${data}'`,
        `curl -s -o /dev/null -w '%{http_connect}\\n' -x "http://mu:wrong@$addr" ${url} -d '${data}'`,
        `curl -s -o /dev/null -w '%{http_code}\\n' -x "http://mu:wrong@$addr" http://api.mistral.ai/v1/chat/completions -d '${data}'`,
        `curl -s -o /dev/null -w '%{http_connect} %{http_code}\\n' ${url} -H 'content-type: application/json' -d '${data}'`,
      ].join('\n'),
    );
    const r = await cli(['run', '--upstream', mock.url, '--', 'sh', 'auth.sh'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile } });
    assert.equal(r.stdout, '407\n407\n407\n200 200\n', r.stderr);
    assert.equal((await readLogRows(join(dir, 'mistral_usage_log.csv'))).length, 1);
  });

  test("other hosts are tunnelled untouched (no row), verified against the user's own CA", async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    // Another HTTPS server speaking the same API, not a Mistral host, signed by the user's own CA.
    const other = await tlsMockFor(t, dir, { name: 'user' });
    await writeFile(
      join(dir, 'other.py'),
      `import requests, sys
r = requests.post(sys.argv[1] + "/v1/chat/completions", json=${JSON.stringify(CHAT)}); r.raise_for_status()
print("other", r.json()["usage"]["total_tokens"])
r = requests.post("https://api.mistral.ai/v1/chat/completions", json=${JSON.stringify(CHAT)}); r.raise_for_status()
print("mistral ok")
`,
    );
    const r = await cli(['run', '--upstream', mock.url, '--', PYTHON, 'other.py', other.mock.url], {
      cwd: dir,
      env: { NODE_EXTRA_CA_CERTS: caFile, REQUESTS_CA_BUNDLE: other.caFile },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^other \d+\nmistral ok\n$/);
    assert.equal(other.mock.served.length, 1, 'the other server was reached');
    assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), mock.served.map(rowTail), 'only the Mistral call is logged');
  });

  test('a client that refuses the run certificate fails as with any bad certificate; one line says which host and why', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    await writeFile(
      join(dir, 'pinned.py'),
      `import requests
for i in range(2):
    try:
        requests.post("https://api.mistral.ai/v1/chat/completions", json={}, verify="/etc/ssl/certs/ca-certificates.crt")
    except requests.exceptions.SSLError as e:
        print("SSLError", "CERTIFICATE_VERIFY_FAILED" in str(e))
`,
    );
    const r = await cli(['run', '--upstream', mock.url, '--', PYTHON, 'pinned.py'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'SSLError True\nSSLError True\n');
    const lines = r.stderr.split('\n').filter((l) => l.includes("refused the run's certificate"));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0] ?? '', /^mistral-usage-log: a client refused the run's certificate for api\.mistral\.ai \(TLS alert: unknown ca\): its calls to api\.mistral\.ai are not logged/);
    assert.equal(mock.requests.length, 0);
  });

  test('NO_PROXY entries that would bypass Mistral are removed for the command, with one warning', async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    await writeFile(join(dir, 'np.py'), `import os, requests\nprint(os.environ["NO_PROXY"], os.environ["no_proxy"])\nrequests.post("https://api.mistral.ai/v1/chat/completions", json=${JSON.stringify(CHAT)}).raise_for_status()\n`);
    const r = await cli(['run', '--upstream', mock.url, '--', PYTHON, 'np.py'], {
      cwd: dir,
      env: { NODE_EXTRA_CA_CERTS: caFile, NO_PROXY: 'localhost,.mistral.ai,example.com', no_proxy: '*' },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'localhost,example.com \n');
    assert.match(r.stderr, /^mistral-usage-log: removed \.mistral\.ai, \* from NO_PROXY for the command: it would send Mistral calls around the proxy$/m);
    assert.equal((await readLogRows(join(dir, 'mistral_usage_log.csv'))).length, 1);
  });

  const python313 = ['/root/.pyenv/versions/3.13.0/bin/python3', '/usr/bin/python3.13', '/usr/local/bin/python3.13'].find((p) => existsSync(p));
  test('Python 3.13 (strict X.509 verification by default), stdlib urllib: accepted, one row', { skip: python313 === undefined && 'no Python 3.13 here (the openssl -x509_strict test checks the profile)' }, async (t) => {
    const dir = await tempDirFor(t, 'mul-proxy-');
    const { mock, caFile } = await tlsMockFor(t, dir);
    await writeFile(
      join(dir, 'strict.py'),
      `import json, ssl, urllib.request
assert ssl.create_default_context().verify_flags & ssl.VERIFY_X509_STRICT
req = urllib.request.Request("https://api.mistral.ai/v1/chat/completions", data=json.dumps(${JSON.stringify(CHAT)}).encode(), headers={"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["model"])
`,
    );
    const r = await cli(['run', '--upstream', mock.url, '--', python313!, 'strict.py'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'mistral-small-latest\n');
    assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), mock.served.map(rowTail));
  });
});
