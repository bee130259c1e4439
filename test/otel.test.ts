/**
 * The OpenTelemetry metrics export against a real receiver (VictoriaMetrics on loopback): for every
 * way a process ends, the receiver's per-model token sums, read with the README's own PromQL
 * queries, equal the CSV's.
 */
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { MockMistral } from './support/mock-mistral.js';
import { pathToFileURL } from 'node:url';
import { cli } from './cli/cli-helpers.js';
import { startProxy } from './support/proxy-command.js';
import { linkNodeModules, mockFor, ourLines, readLogRows, registerPath, repoRoot, runApp, runNode, tempDirFor, type RunResult } from './support/run-app.js';
import { PYTHON, tlsMockFor } from './support/tls-mock.js';
import { freePort, receiverMissing, startReceiver, type Receiver } from './support/victoria-metrics.js';

const skip = receiverMissing();

/** The README's queries for tokens per model (the lines of its first ```promql block): input, then output. */
async function readmeQueries(): Promise<{ input: string; output: string }> {
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
  const block = /```promql\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block !== undefined, 'the README has a ```promql block');
  const lines = block.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
  const input = lines.find((line) => line.includes('input_tokens'));
  const output = lines.find((line) => line.includes('output_tokens'));
  assert.ok(input !== undefined && output !== undefined, `an input and an output query:\n${block}`);
  return { input, output };
}

type Sums = Record<string, { input: number; output: number }>;

/** Per-model prompt and completion sums of the CSV. */
async function csvSums(logPath: string): Promise<Sums> {
  const sums: Sums = {};
  for (const [, model, prompt, completion] of await readLogRows(logPath)) {
    const entry = (sums[model!] ??= { input: 0, output: 0 });
    entry.input += Number(prompt);
    entry.output += Number(completion);
  }
  return sums;
}

/** Per-model sums the receiver answers to the README's queries, polled until they equal `expected` (fresh data can take a moment). */
async function receiverSums(receiver: Receiver, expected: Sums): Promise<Sums> {
  const { input, output } = await readmeQueries();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [inputs, outputs] = await Promise.all([receiver.query(input), receiver.query(output)]);
    const sums: Sums = {};
    for (const [model, value] of inputs) (sums[model] ??= { input: 0, output: 0 }).input = value;
    for (const [model, value] of outputs) (sums[model] ??= { input: 0, output: 0 }).output = value;
    if (JSON.stringify(sorted(sums)) === JSON.stringify(sorted(expected)) || Date.now() > deadline) return sums;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function sorted(sums: Sums): Sums {
  return Object.fromEntries(Object.entries(sums).sort(([a], [b]) => a.localeCompare(b)));
}

async function assertReceiverMatchesCsv(receiver: Receiver, logPath: string, expectedRows: number): Promise<Sums> {
  const rows = await readLogRows(logPath);
  assert.equal(rows.length, expectedRows, 'every call has its CSV row');
  const expected = await csvSums(logPath);
  assert.deepEqual(sorted(await receiverSums(receiver, expected)), sorted(expected), 'the receiver holds the CSV tokens, per model');
  return expected;
}

/**
 * An app that makes the given calls in order with fetch, then ends as told. `MOCK` is the mock's URL.
 * `models` cycles through request models, which the mock echoes as the response model.
 */
function callsApp(calls: number, options: { models?: string[]; stream?: boolean; end?: 'return' | 'exit' | 'throw'; before?: string; after?: string } = {}): string {
  const models = JSON.stringify(options.models ?? ['mistral-small-latest', 'mistral-large-latest']);
  const end = options.end ?? 'return';
  return `
    ${options.before ?? ''}
    {
    const models = ${models};
    for (let i = 0; i < ${calls}; i++) {
      const response = await fetch(process.env.MOCK + '/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: models[i % models.length], stream: ${options.stream === true}, messages: [{ role: 'user', content: 'hi' }] }),
      });
      if (!response.ok) throw new Error('mock answered ' + response.status);
      await response.text();
    }
    }
    ${options.after ?? ''}
    ${end === 'exit' ? 'process.exit(0);' : end === 'throw' ? "throw new Error('the app fails after its calls');" : ''}
  `;
}

/** Python's requests and curl, each a JSON call and a stream, against the base URL in $1. */
async function writeNonNodeApp(dir: string): Promise<void> {
  const chat = (model: string, stream = false): string => JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] });
  await writeFile(
    join(dir, 'app.py'),
    `import json, sys, requests
base = sys.argv[1]
r = requests.post(base + "/v1/chat/completions", json=json.loads('${chat('py-json')}')); r.raise_for_status()
with requests.post(base + "/v1/chat/completions", json=json.loads('${chat('py-stream', true)}'), stream=True) as r:
    r.raise_for_status()
    print("python", sum(1 for line in r.iter_lines() if line.startswith(b"data:")))
`,
  );
  await writeFile(
    join(dir, 'calls.sh'),
    [
      'set -e',
      `${PYTHON} app.py "$1"`,
      `curl -sS --fail -o /dev/null "$1/v1/chat/completions" -H 'content-type: application/json' -d '${chat('curl-json')}'`,
      `curl -sS --fail -N "$1/v1/chat/completions" -H 'content-type: application/json' -d '${chat('curl-stream', true)}' | grep -c '^data:'`,
    ].join('\n'),
  );
}
const NON_NODE_OUTPUT = 'python 6\n6\n';

/** The distinct `server.address:server.port` of these series. */
function serverOf(series: Array<Record<string, string>>): string[] {
  return [...new Set(series.map((labels) => `${labels['server.address']}:${labels['server.port']}`))];
}

/** A Node 24 binary: this machine's, or the one running the tests (CI's second pass). */
const NODE24 = existsSync('/opt/nodes/n24/package/bin/node')
  ? '/opt/nodes/n24/package/bin/node'
  : Number(process.versions.node.split('.')[0]) >= 24
    ? process.execPath
    : undefined;

interface Scenario {
  dir: string;
  logPath: string;
  mock: MockMistral;
  env: Record<string, string>;
}

/** A folder, a mock (plain HTTP unless `tls`: then `caFile` trusts it) and the environment that exports to the receiver. */
async function scenario(t: TestContext, receiverEndpoint: string, extraEnv: Record<string, string> = {}, options: { tls?: boolean } = {}): Promise<Scenario> {
  const dir = await tempDirFor(t);
  const { mock, caFile } = options.tls === true ? await tlsMockFor(t, dir) : { mock: await mockFor(t), caFile: undefined };
  const logPath = join(dir, 'usage.csv');
  const env = {
    MOCK: mock.url,
    MISTRAL_USAGE_LOG: logPath,
    MISTRAL_USAGE_HOSTS: mock.hostPort,
    MISTRAL_USAGE_OTLP: '1',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiverEndpoint,
    OTEL_SERVICE_NAME: 'otel-test',
    ...(caFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: caFile }),
    ...extraEnv,
  };
  return { dir, logPath, mock, env };
}

function assertClean(result: RunResult, expectedCode = 0): void {
  assert.equal(result.code, expectedCode, result.stderr);
  assert.deepEqual(ourLines(result.stderr), [], 'no warning');
}

describe('OpenTelemetry metrics, against a real receiver', { skip: skip ?? false }, () => {
  it('one process: the README queries give the CSV tokens per model; names, unit attributes and resource as documented', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint, { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,team=search' });
    const result = await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(5, { models: ['mistral-small-latest', 'mistral-large-latest', 'codestral-latest'] }) });
    assertClean(result);
    await assertReceiverMatchesCsv(receiver, s.logPath, 5);

    const [counter] = await receiver.series('gen_ai.client.inference.usage.input_tokens');
    assert.ok(counter !== undefined);
    assert.equal(counter['gen_ai.provider.name'], 'mistral_ai');
    assert.equal(counter['gen_ai.operation.name'], 'chat');
    assert.equal(counter['gen_ai.token.modality'], 'unknown');
    assert.equal(counter['server.address'], '127.0.0.1');
    assert.equal(counter['server.port'], String(s.mock.port));
    assert.equal(counter['service.name'], 'otel-test');
    assert.equal(counter['team'], 'search');
    assert.match(counter['service.instance.id'] ?? '', /^[0-9a-f-]{36}$/);
    const histogram = await receiver.series('gen_ai.client.token.usage_sum');
    assert.deepEqual(new Set(histogram.map((series) => series['gen_ai.token.type'])), new Set(['input', 'output']));
    const buckets = await receiver.series('gen_ai.client.token.usage_bucket');
    assert.ok(buckets.some((series) => series['vmrange'] !== undefined || series['le'] !== undefined), 'the histogram has its buckets');
  });

  it('ten short-lived processes: each its own series, no overwrite', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint);
    await writeFile(join(s.dir, 'short.mjs'), callsApp(2));
    const results = [];
    for (let batch = 0; batch < 2; batch++) {
      results.push(...(await Promise.all(Array.from({ length: 5 }, () => runApp({ cwd: s.dir, preload: true, env: s.env, file: 'short.mjs' })))));
    }
    for (const result of results) assertClean(result);
    await assertReceiverMatchesCsv(receiver, s.logPath, 20);
    const instances = new Set((await receiver.series('gen_ai.client.inference.usage.input_tokens')).map((series) => series['service.instance.id']));
    assert.equal(instances.size, 10, 'one service.instance.id per process');
  });

  it('a worker pool, terminated by the main thread: the workers\' tokens reach the receiver through the main thread', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint);
    await writeFile(join(s.dir, 'task.mjs'), `
      import { parentPort } from 'node:worker_threads';
      parentPort.on('message', async (calls) => {
        for (let i = 0; i < calls; i++) {
          const response = await fetch(process.env.MOCK + '/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'worker-model-' + (i % 2), messages: [] }) });
          await response.text();
        }
        parentPort.postMessage('done');
      });
    `);
    const source = `
      import { Worker } from 'node:worker_threads';
      const pool = Array.from({ length: 3 }, () => new Worker(new URL('./task.mjs', import.meta.url)));
      await Promise.all(pool.map((worker) => new Promise((resolve) => { worker.once('message', resolve); worker.postMessage(3); })));
      ${callsApp(1)}
      await Promise.all(pool.map((worker) => worker.terminate()));
    `;
    // The workers inherit the preload through execArgv.
    const result = await runApp({ cwd: s.dir, preload: true, env: s.env, source });
    assertClean(result);
    await assertReceiverMatchesCsv(receiver, s.logPath, 10);
  });

  it('process.exit() right after a call, and an uncaught exception: exported synchronously at exit', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint);
    assertClean(await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(1, { models: ['exit-model'], end: 'exit' }) }));
    const thrown = await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(2, { models: ['throw-model'], end: 'throw' }) });
    assert.equal(thrown.code, 1);
    assert.match(thrown.stderr, /the app fails after its calls/);
    assert.deepEqual(ourLines(thrown.stderr), []);
    await assertReceiverMatchesCsv(receiver, s.logPath, 3);
  });

  it('streamed calls', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint);
    assertClean(await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(3, { stream: true }) }));
    await assertReceiverMatchesCsv(receiver, s.logPath, 3);
  });

  it('under `mistral-usage run -- node app.mjs` (this Node): whichever side records a call, the child\'s preload or the run\'s proxy, exports it', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint);
    await writeFile(join(s.dir, 'app.mjs'), callsApp(3, { models: ['run-model'] }));
    await writeFile(join(s.dir, 'parent.mjs'), `
      import { execFileSync } from 'node:child_process';
      ${callsApp(1, { models: ['parent-model'] })}
      execFileSync(process.execPath, ['app.mjs'], { stdio: 'inherit' });
    `);
    const result = await runNode([join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'run', '--quiet', '--', process.execPath, 'parent.mjs'], { cwd: s.dir, env: s.env });
    assertClean(result);
    await assertReceiverMatchesCsv(receiver, s.logPath, 4);
  });

  it('Python (requests) and curl under `mistral-usage run`, JSON and streams: the run\'s proxy exports before `run` exits; server.address is the host the app named', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint, {}, { tls: true });
    await writeNonNodeApp(s.dir);
    const result = await cli(['run', '--quiet', '--upstream', s.mock.url, '--', 'sh', 'calls.sh', 'https://api.mistral.ai'], { cwd: s.dir, env: s.env });
    assertClean(result);
    assert.equal(result.stdout, NON_NODE_OUTPUT);
    await assertReceiverMatchesCsv(receiver, s.logPath, 4);
    // The app named api.mistral.ai; --upstream (a gateway, here the mock) is where the proxy sent it.
    assert.deepEqual(serverOf(await receiver.series('gen_ai.client.inference.usage.input_tokens')), ['api.mistral.ai:443']);
  });

  it('Python (requests) and curl through `mistral-usage proxy` (base URL), stopped by SIGTERM: everything exported at the stop; server.address is the upstream', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint, {}, { tls: true });
    await writeNonNodeApp(s.dir);
    const proxy = await startProxy(t, s.dir, ['--upstream', s.mock.url], s.env);
    const result = await runNode(['calls.sh', proxy.url], { cwd: s.dir, node: 'sh', env: {} });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, NON_NODE_OUTPUT);
    const stopped = await proxy.stop('SIGTERM');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.deepEqual(ourLines(stopped.stderr), [], 'no warning');
    await assertReceiverMatchesCsv(receiver, s.logPath, 4);
    // The clients named the proxy; what they reached, and what the metrics name, is the upstream.
    assert.deepEqual(serverOf(await receiver.series('gen_ai.client.inference.usage.input_tokens')), [`127.0.0.1:${s.mock.port}`]);
  });

  it('a long-running `mistral-usage proxy` exports at OTEL_METRIC_EXPORT_INTERVAL, not only when it stops', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint, { OTEL_METRIC_EXPORT_INTERVAL: '300' }, { tls: true });
    await writeNonNodeApp(s.dir);
    const proxy = await startProxy(t, s.dir, ['--upstream', s.mock.url], s.env);
    const result = await runNode(['calls.sh', proxy.url], { cwd: s.dir, node: 'sh', env: {} });
    assert.equal(result.stdout, NON_NODE_OUTPUT, result.stderr);
    await assertReceiverMatchesCsv(receiver, s.logPath, 4);
    assert.equal(proxy.child.exitCode, null, 'still running');
    assert.equal((await proxy.stop('SIGINT')).code, 0);
  });

  it('a Node 24 app under `run`: fetch goes through the proxy, which exports it; the preload leaves those calls to it and exports only the call that bypasses the proxy', { skip: NODE24 === undefined && 'no Node 24 binary here' }, async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, receiver.otlpEndpoint, { OTEL_RESOURCE_ATTRIBUTES: 'side=proxy' });
    await linkNodeModules(s.dir);
    await writeFile(join(s.dir, 'app.mjs'), callsApp(2, {
      models: ['via-proxy-json'],
      before: "import { Agent, fetch as undiciFetch } from 'undici';",
      after: `
        ${callsApp(1, { models: ['via-proxy-stream'], stream: true })}
        // An own undici Agent ignores the proxy variables: this call goes straight to the mock, and the preload records it.
        const own = await undiciFetch(process.env.MOCK + '/v1/chat/completions', { method: 'POST', dispatcher: new Agent(), headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'bypass-model', messages: [] }) });
        await own.text();
      `,
    }));
    // The child's preload says which side it is in its resource.
    const command = ['sh', '-c', 'OTEL_RESOURCE_ATTRIBUTES=side=preload exec "$0" app.mjs', NODE24!];
    const result = await cli(['run', '--quiet', '--', ...command], { cwd: s.dir, env: s.env });
    assertClean(result);
    assert.equal(s.mock.served.length, 4);
    await assertReceiverMatchesCsv(receiver, s.logPath, 4);
    const sides: Record<string, string[]> = {};
    for (const series of await receiver.series('gen_ai.client.inference.usage.input_tokens')) (sides[series['gen_ai.response.model']!] ??= []).push(series['side']!);
    assert.deepEqual(sorted(sides as never), sorted({ 'via-proxy-json': ['proxy'], 'via-proxy-stream': ['proxy'], 'bypass-model': ['preload'] } as never), 'each call counted once, by one side');
  });

  it('gzip compression, headers and a metrics endpoint given in full; http/json where the receiver takes only protobuf: one warning', async (t) => {
    const receiver = await startReceiver(t);
    const s = await scenario(t, 'http://127.0.0.1:9/unused', {
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.otlpEndpoint}/v1/metrics`,
      OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-scope-orgid=team%20a',
    });
    assertClean(await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(2) }));
    await assertReceiverMatchesCsv(receiver, s.logPath, 2);

    const json = await runApp({ cwd: s.dir, preload: true, env: { ...s.env, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, source: callsApp(1) });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(ourLines(json.stderr).length, 1, json.stderr);
    assert.match(ourLines(json.stderr)[0]!, /cannot export usage metrics to .* \(Bad Request\)/);
    assert.equal((await readLogRows(s.logPath)).length, 3, 'the CSV has every row');
  });

  it('a receiver that is down, then up: one warning, the app unaffected, the totals right once it is back', async (t) => {
    const port = await freePort();
    // Each export gives up (retries included) after 500 ms, so the outage is seen as a failed export, not absorbed by retries.
    const s = await scenario(t, `http://127.0.0.1:${port}/opentelemetry`, { OTEL_METRIC_EXPORT_INTERVAL: '200', OTEL_EXPORTER_OTLP_TIMEOUT: '500' });
    // The app makes calls while nothing listens, waits for the receiver, makes more, and waits for a periodic export.
    const source = callsApp(3, {
      after: `
        console.log('first calls done');
        while (!(await fetch('http://127.0.0.1:${port}/health').then((r) => r.ok, () => false))) await new Promise((r) => setTimeout(r, 100));
        ${callsApp(2, { models: ['after-model'] })}
        await new Promise((r) => setTimeout(r, 1000));
      `,
    });
    const app = runApp({ cwd: s.dir, preload: true, env: s.env, source });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const receiver = await startReceiver(t, port);
    const result = await app;
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /first calls done/);
    const ours = ourLines(result.stderr);
    assert.equal(ours.length, 1, `one warning:\n${result.stderr}`);
    assert.match(ours[0]!, /cannot export usage metrics to http:\/\/127\.0\.0\.1:\d+\/opentelemetry\/v1\/metrics .*The CSV log has every row/);
    await assertReceiverMatchesCsv(receiver, s.logPath, 5);
  });

  it('a receiver that stays down: the CSV gets every row, the app exits with its own status, one warning', async (t) => {
    const port = await freePort();
    const s = await scenario(t, `http://127.0.0.1:${port}/opentelemetry`);
    const result = await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(4, { end: 'exit' }) });
    assert.equal(result.code, 0, result.stderr);
    assert.equal((await readLogRows(s.logPath)).length, 4);
    assert.equal(ourLines(result.stderr).length, 1, result.stderr);
  });

  it('a receiver that answers 429 with Retry-After: the export is retried and nothing is lost', async (t) => {
    const receiver = await startReceiver(t);
    // A loopback front that refuses the first export with 429, then passes requests through.
    let refused = 0;
    let passed = 0;
    const front = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (refused === 0) {
        refused++;
        req.resume();
        res.writeHead(429, { 'retry-after': '1' }).end();
        return;
      }
      passed++;
      const upstream = request(`${receiver.url}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => front.close(() => resolve())));
    const address = front.address();
    assert.ok(typeof address === 'object' && address !== null);
    const s = await scenario(t, `http://127.0.0.1:${address.port}/opentelemetry`);
    assertClean(await runApp({ cwd: s.dir, preload: true, env: s.env, source: callsApp(3) }));
    assert.equal(refused, 1);
    assert.ok(passed >= 1);
    await assertReceiverMatchesCsv(receiver, s.logPath, 3);
  });
});

describe('configuration warnings: one per bad value, not one per process or thread', () => {
  const BAD = { MISTRAL_USAGE_OTLP: '1', OTEL_METRIC_EXPORT_INTERVAL: 'soon', MISTRAL_USAGE_VERBOSE: 'x', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };
  const SAID = [
    'mistral-usage-log: MISTRAL_USAGE_VERBOSE="x" is not 1 or 0; using 0',
    'mistral-usage-log: OTEL_METRIC_EXPORT_INTERVAL="soon" is not a whole number of milliseconds >= 1; using 60000',
  ];
  /** A Node app with two worker threads that starts a Node child process: four preloads. */
  const TREE = `
    import { Worker } from 'node:worker_threads';
    import { execFileSync } from 'node:child_process';
    import { writeFileSync } from 'node:fs';
    writeFileSync('task.mjs', 'setTimeout(() => {}, 20);');
    const pool = Array.from({ length: 2 }, () => new Worker(new URL('./task.mjs', import.meta.url)));
    await Promise.all(pool.map((worker) => new Promise((resolve) => worker.once('exit', resolve))));
    execFileSync(process.execPath, ['-e', '1'], { stdio: 'inherit' });
  `;

  it('the preload in a process tree: said by the main thread of the first process only', async (t) => {
    const dir = await tempDirFor(t);
    // Through NODE_OPTIONS, as `run` does: the child process and the workers load the preload too.
    const NODE_OPTIONS = `--import=${pathToFileURL(registerPath).href}`;
    const result = await runApp({ cwd: dir, preload: false, env: { ...BAD, NODE_OPTIONS, MISTRAL_USAGE_LOG: join(dir, 'usage.csv') }, source: TREE });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(ourLines(result.stderr).sort(), SAID);
  });

  it('under `mistral-usage run`: said once by `run`, whatever the command (a Node tree, or curl)', async (t) => {
    const dir = await tempDirFor(t);
    await writeFile(join(dir, 'tree.mjs'), TREE);
    for (const command of [[process.execPath, 'tree.mjs'], ['sh', '-c', 'true']]) {
      const result = await cli(['run', '--quiet', '--', ...command], { cwd: dir, env: BAD });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(ourLines(result.stderr).sort(), SAID, command.join(' '));
    }
  });
});

describe('OpenTelemetry metrics: what the preload costs', () => {
  it('dist/register.js holds only the config reader and the thin sink; the SDK is in dist/otlp-exporter.cjs', async () => {
    const preload = await readFile(join(repoRoot, 'dist', 'register.js'), 'utf8');
    const exporter = await readFile(join(repoRoot, 'dist', 'otlp-exporter.cjs'), 'utf8');
    for (const sdkCode of ['MeterProvider', 'PeriodicExportingMetricReader', 'ExportMetricsServiceRequest', '@opentelemetry']) {
      assert.ok(!preload.includes(sdkCode), `register.js has no ${sdkCode}`);
    }
    for (const sdkCode of ['PeriodicExportingMetricReader', 'gen_ai.client.inference.usage.input_tokens']) assert.ok(exporter.includes(sdkCode));
  });

  it('with MISTRAL_USAGE_OTLP=1, the preload still loads no Node module at start-up beyond diagnostics_channel', async (t) => {
    const dir = await tempDirFor(t);
    const print = 'console.log(process.moduleLoadList.join("\\n"))';
    const env = { MISTRAL_USAGE_LOG: join(dir, 'usage.csv'), MISTRAL_USAGE_OTLP: '1', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };
    const loaded = async (preload: string[]) => {
      const result = await runNode([...preload, '-e', print], { cwd: dir, env });
      assert.equal(result.code, 0, result.stderr);
      return new Set(result.stdout.trim().split('\n'));
    };
    const empty = join(dir, 'empty.mjs');
    await writeFile(empty, '');
    const without = await loaded(['--import', pathToFileURL(empty).href]);
    const withPreload = await loaded(['--import', pathToFileURL(registerPath).href]);
    assert.deepEqual([...withPreload].filter((name) => !without.has(name) && name !== 'NativeModule diagnostics_channel'), []);
  });

  it('the exporter thread starts at the first call only when the export is on (MISTRAL_USAGE_OTLP=1, OTEL_SDK_DISABLED not true)', async (t) => {
    const dir = await tempDirFor(t);
    const mock = await mockFor(t);
    const source = `
      let threads = 0;
      process.on('worker', () => threads++);
      await new Promise((resolve) => setTimeout(resolve, 50));
      console.log('before the call: ' + threads);
      ${callsApp(1)}
      await new Promise((resolve) => setTimeout(resolve, 100));
      console.log('after the call: ' + threads);
    `;
    // Nothing listens on the port: the export fails at exit, which is not what this test is about.
    const base = { MOCK: mock.url, MISTRAL_USAGE_LOG: join(dir, 'usage.csv'), MISTRAL_USAGE_HOSTS: mock.hostPort, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' };
    const threadsWith = async (env: Record<string, string>) => {
      const result = await runApp({ cwd: dir, preload: true, env: { ...base, ...env }, source });
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.trim();
    };
    assert.equal(await threadsWith({}), 'before the call: 0\nafter the call: 0');
    assert.equal(await threadsWith({ MISTRAL_USAGE_OTLP: '1', OTEL_SDK_DISABLED: 'true' }), 'before the call: 0\nafter the call: 0');
    assert.equal(await threadsWith({ MISTRAL_USAGE_OTLP: '1' }), 'before the call: 0\nafter the call: 1');
  });
});
