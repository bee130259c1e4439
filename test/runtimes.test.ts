/**
 * Bun and Deno load `--preload` modules but publish no undici diagnostics channels, so the preload
 * cannot see their calls. Two promises, with the real binaries (.ci/runtimes.sh):
 * - under `--preload`, the preload prints exactly one line pointing at `mistral-usage run`, and the
 *   app's output is what it is without the preload (nothing thrown, no permission asked for);
 * - under `mistral-usage run`, their fetch goes through the run's proxy (both honour HTTPS_PROXY)
 *   and trusts the run's CA (Bun reads NODE_EXTRA_CA_CERTS, Deno DENO_CERT): one row per call.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { cli, cliPath } from './cli/cli-helpers.js';
import { mockFor, ourLines, readLogRows, registerPath, rowTail, runNode, tempDirFor } from './support/run-app.js';
import type { RunResult } from './support/run-app.js';
import { runtimeBinary, runtimeMissing, type Runtime } from './support/runtimes.js';
import { tlsMockFor } from './support/tls-mock.js';

const CHAT = { model: 'mistral-small-latest', messages: [{ role: 'user', content: 'hi' }] };

/** Three calls with fetch (JSON, a stream, gzip), each printing what the app saw. Runs unchanged on Bun and Deno. */
const APP = `
const base = (globalThis.Deno?.args ?? process.argv.slice(2))[0];
const headers = { "content-type": "application/json" };
const chat = ${JSON.stringify(CHAT)};
const post = (path, body) => fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
const json = await (await post("/v1/chat/completions", chat)).json();
console.log("json", json.model, json.choices[0].message.content);
const stream = await post("/v1/chat/completions", { ...chat, model: "open-mistral-nemo", stream: true });
console.log("sse", stream.status, (await stream.text()).split("\\n").filter((l) => l.startsWith("data:")).length);
const gzip = await post("/mock/gzip/v1/chat/completions", { ...chat, model: "mistral-large-latest" });
console.log("gzip", gzip.status, (await gzip.json()).model);
`;

interface Case {
  readonly runtime: Runtime;
  readonly name: 'Bun' | 'Deno';
  /** The command line that runs app.ts with the preload (PRELOAD) or without it, and with these extra arguments. */
  readonly argv: (preload: string | undefined, extra: string[]) => string[];
  /** The CA variables `run` sets that this runtime reads (measured: each alone is enough). */
  readonly caVars: readonly string[];
}

/** Every CA variable `run` gives the command. */
const CA_VARS = ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'NODE_EXTRA_CA_CERTS', 'DENO_CERT'];

const CASES: Case[] = [
  { runtime: 'bun', name: 'Bun', argv: (preload, extra) => [...(preload === undefined ? [] : ['--preload', preload]), 'app.ts', ...extra], caVars: ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE'] },
  // Deno 2 has `deno run --preload`. Only network access is granted: the preload must not need --allow-env.
  { runtime: 'deno', name: 'Deno', argv: (preload, extra) => ['run', '--allow-net', ...(preload === undefined ? [] : ['--preload', preload]), 'app.ts', ...extra], caVars: ['DENO_CERT', 'NODE_EXTRA_CA_CERTS'] },
];

function run(binary: string, args: string[], cwd: string, env: Record<string, string | undefined> = {}): Promise<RunResult> {
  // NO_COLOR: Deno colours its own messages otherwise.
  return runNode(args, { node: binary, cwd, env: { NO_COLOR: '1', ...env }, timeoutMs: 60_000 });
}

function tails(rows: string[][]): string[] {
  return rows.map((row) => row.slice(1).join(','));
}

async function appDir(t: TestContext): Promise<string> {
  const dir = await tempDirFor(t, 'mul-runtimes-');
  await writeFile(join(dir, 'app.ts'), APP);
  return dir;
}

for (const c of CASES) {
  const skip = runtimeMissing(c.runtime);
  const binary = runtimeBinary(c.runtime) ?? c.runtime;

  describe(`${c.name}`, { skip }, () => {
    test(`${c.runtime} --preload register.js: exactly one line pointing at run; the app's output unchanged; nothing logged`, async (t) => {
      const dir = await appDir(t);
      const mock = await mockFor(t);
      const without = await run(binary, c.argv(undefined, [mock.url]), dir);
      assert.equal(without.code, 0, without.stderr);
      const withPreload = await run(binary, c.argv(registerPath, [mock.url]), dir);
      assert.equal(withPreload.code, 0, withPreload.stderr);
      assert.equal(withPreload.stdout, without.stdout);
      assert.match(without.stdout, /^json mistral-small-latest Bonjour.*\nsse 200 \d+\ngzip 200 mistral-large-latest\n$/);
      const command = c.runtime === 'bun' ? 'bun app.ts' : 'deno run -A app.ts';
      assert.deepEqual(ourLines(withPreload.stderr), [
        `mistral-usage-log: ${c.name} publishes no HTTP diagnostics channels, so this preload cannot see its calls and logs nothing; run the app as \`npx mistral-usage-log run -- ${command}\` instead (a local proxy logs them)`,
      ]);
      assert.equal(withPreload.stderr.replace(/^mistral-usage-log: .*\n/m, ''), without.stderr);
      assert.equal(existsSync(join(dir, 'mistral_usage_log.csv')), false);
    });

    test(`${c.runtime} --preload with every permission: the line once; MISTRAL_USAGE_DISABLE=1 or under run, no line (run logs the calls)`, async (t) => {
      const dir = await appDir(t);
      const mock = await mockFor(t);
      const all = c.runtime === 'deno' ? ['run', '-A', '--preload', registerPath, 'app.ts', mock.url] : c.argv(registerPath, [mock.url]);
      const plain = await run(binary, all, dir);
      assert.equal(plain.code, 0, plain.stderr);
      assert.equal(ourLines(plain.stderr).length, 1, plain.stderr);
      const disabled = await run(binary, all, dir, { MISTRAL_USAGE_DISABLE: '1' });
      assert.equal(disabled.code, 0, disabled.stderr);
      assert.equal(disabled.stdout, plain.stdout);
      assert.deepEqual(ourLines(disabled.stderr), []);

      const tls = await tlsMockFor(t, dir);
      const under = await cli(['run', '--upstream', tls.mock.url, '--', binary, ...all.slice(0, -1), 'https://api.mistral.ai'], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: tls.caFile, NO_COLOR: '1' } });
      assert.equal(under.code, 0, under.stderr);
      assert.deepEqual(ourLines(under.stderr), [], 'no line from the preload under run');
      assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), tls.mock.served.map(rowTail));
      assert.equal(tls.mock.served.length, 3);
    });

    test(`mistral-usage run -- ${c.runtime} app.ts: fetch over HTTPS through the proxy, the run's CA trusted, one row per call`, async (t) => {
      const dir = await appDir(t);
      const { mock, caFile } = await tlsMockFor(t, dir);
      const r = await cli(['run', '--upstream', mock.url, '--', binary, ...c.argv(undefined, ['https://api.mistral.ai'])], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile, NO_COLOR: '1' } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^json mistral-small-latest Bonjour.*\nsse 200 6\ngzip 200 mistral-large-latest\n$/);
      assert.equal(mock.served.length, 3);
      assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), mock.served.map(rowTail));
      assert.match(r.stderr, /^mistral-usage: 3 calls logged to /m);
      assert.doesNotMatch(r.stderr, /mistral-usage-log: /, 'no warnings: no certificate refused');
    });

    test(`${c.runtime} under run trusts the run's CA through ${c.caVars.join(' or ')}, each alone; without them, a certificate error and no row`, async (t) => {
      const dir = await appDir(t);
      const { mock, caFile } = await tlsMockFor(t, dir);
      const runWithOnly = (keep: string | undefined): Promise<RunResult> => {
        const unset = CA_VARS.filter((name) => name !== keep).join(' ');
        const command = ['sh', '-c', `unset ${unset}; exec "$@"`, 'sh', binary, ...c.argv(undefined, ['https://api.mistral.ai'])];
        return cli(['run', '-q', '--upstream', mock.url, '--', ...command], { cwd: dir, env: { NODE_EXTRA_CA_CERTS: caFile, NO_COLOR: '1' } });
      };
      for (const keep of c.caVars) {
        const r = await runWithOnly(keep);
        assert.equal(r.code, 0, `${keep} alone: ${r.stderr}`);
        assert.match(r.stdout, /^json mistral-small-latest /);
      }
      assert.equal(mock.served.length, 3 * c.caVars.length);
      const none = await runWithOnly(undefined);
      assert.notEqual(none.code, 0, 'no CA variable: the run certificate is refused');
      assert.equal(none.stdout, '');
      // However the client refuses (Bun resets the connection, Deno sends an alert and exits at once), the run says so.
      const refused = none.stderr.split('\n').filter((l) => l.includes("refused the run's certificate"));
      assert.equal(refused.length, 1, none.stderr);
      assert.match(refused[0] ?? '', /^mistral-usage-log: a client refused the run's certificate for api\.mistral\.ai \(.+\): its calls to api\.mistral\.ai are not logged/);
      assert.equal(mock.served.length, 3 * c.caVars.length, 'nothing reached the server');
      assert.deepEqual(tails(await readLogRows(join(dir, 'mistral_usage_log.csv'))), mock.served.map(rowTail));
    });
  });
}

describe('run prints configuration warnings once, whatever the command', () => {
  const BAD_HOSTS = { MISTRAL_USAGE_HOSTS: 'gw;evil,api.example.com' };
  const warned = (stderr: string, entry: string): string[] => ourLines(stderr).filter((l) => l.startsWith(`mistral-usage-log: MISTRAL_USAGE_HOSTS: ignoring "${entry}"`));

  test('no Node process (a shell): run says it; two Node processes with the preload: still once', async (t) => {
    const dir = await tempDirFor(t, 'mul-runtimes-');
    const shell = await cli(['run', '-q', '--', 'sh', '-c', 'echo ok'], { cwd: dir, env: BAD_HOSTS });
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, 'ok\n');
    assert.deepEqual(ourLines(shell.stderr), [
      'mistral-usage-log: MISTRAL_USAGE_HOSTS: ignoring "gw;evil" (expected host or host:port, e.g. gateway.example.com or 127.0.0.1:8080)',
    ]);
    const node = await cli(['run', '-q', '--', 'sh', '-c', '"$0" -e "console.log(1)" && "$0" -e "console.log(2)"', process.execPath], { cwd: dir, env: BAD_HOSTS });
    assert.equal(node.code, 0, node.stderr);
    assert.equal(node.stdout, '1\n2\n');
    assert.deepEqual(ourLines(node.stderr), ourLines(shell.stderr));
  });

  test("a Node process whose own configuration differs still gets its own warning; a nested run repeats nothing", async (t) => {
    const dir = await tempDirFor(t, 'mul-runtimes-');
    const changed = await cli(['run', '-q', '--', 'sh', '-c', 'MISTRAL_USAGE_HOSTS="a b" exec "$0" -e ""', process.execPath], { cwd: dir, env: BAD_HOSTS });
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(warned(changed.stderr, 'gw;evil').length, 1, changed.stderr);
    assert.equal(warned(changed.stderr, 'a b').length, 1, changed.stderr);
    const nested = await cli(['run', '-q', '--', process.execPath, cliPath, 'run', '-q', '--', process.execPath, '-e', ''], { cwd: dir, env: BAD_HOSTS });
    assert.equal(nested.code, 0, nested.stderr);
    assert.equal(warned(nested.stderr, 'gw;evil').length, 1, nested.stderr);
  });

  test('a Bun app under run: the warning once', { skip: runtimeMissing('bun') }, async (t) => {
    const dir = await appDir(t);
    await writeFile(join(dir, 'app.ts'), 'console.log("bun ok");\n');
    const r = await cli(['run', '-q', '--', runtimeBinary('bun')!, 'app.ts'], { cwd: dir, env: BAD_HOSTS });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'bun ok\n');
    assert.equal(warned(r.stderr, 'gw;evil').length, 1, r.stderr);
  });
});
