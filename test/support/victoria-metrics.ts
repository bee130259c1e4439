/**
 * A real OTLP receiver for the metrics-export tests: VictoriaMetrics (OTLP/HTTP protobuf in,
 * PromQL out), started on loopback in a temporary folder and stopped by its PID. `.ci/otel.sh`
 * installs it (otel-export.md, section 3); without it the tests skip locally and fail in CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { tempDirFor } from './run-app.js';

/** Where `.ci/otel.sh` puts the binary (or `$VICTORIA_METRICS_BIN`). */
export function victoriaMetricsBinary(): string | undefined {
  const given = process.env['VICTORIA_METRICS_BIN'];
  if (given !== undefined && given !== '') return given;
  const dir = process.env['MISTRAL_USAGE_OTEL_DIR'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'mistral-usage-log', 'victoria-metrics');
  const bin = join(dir, 'vm', 'usr', 'bin', 'victoria-metrics');
  return existsSync(bin) ? bin : undefined;
}

/** Why the receiver tests cannot run here, or undefined when they can. In CI a missing receiver is a failure, not a skip. */
export function receiverMissing(): string | undefined {
  if (victoriaMetricsBinary() !== undefined) return undefined;
  const message = 'VictoriaMetrics is not installed: run .ci/otel.sh (or set VICTORIA_METRICS_BIN) to run the OTLP receiver tests';
  if (process.env['CI'] === 'true' || process.env['CI'] === '1') throw new Error(message);
  return message;
}

export interface Receiver {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** The base endpoint for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/metrics). */
  readonly otlpEndpoint: string;
  /** Runs an instant PromQL query; the result as a map from the first label's value (or "") to the number. */
  query(promql: string): Promise<Map<string, number>>;
  /** The raw series of a metric, for checking attributes. */
  series(metric: string): Promise<Array<Record<string, string>>>;
  stop(): Promise<void>;
}

/** A free loopback port (taken from the ephemeral range, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts VictoriaMetrics on 127.0.0.1:`port` (a free one by default); stopped when the test ends. */
export async function startReceiver(t: TestContext, port?: number): Promise<Receiver> {
  const bin = victoriaMetricsBinary();
  if (bin === undefined) throw new Error('VictoriaMetrics is not installed');
  const dir = await tempDirFor(t, 'mistral-usage-vm-');
  const listenPort = port ?? (await freePort());
  const child: ChildProcess = spawn(
    bin,
    [
      `-storageDataPath=${join(dir, 'data')}`,
      `-httpListenAddr=127.0.0.1:${listenPort}`,
      '-retentionPeriod=1d',
      // Fresh samples are searchable at once (the default hides the last 30 s), and nothing is cached between queries.
      '-search.latencyOffset=1ms',
      '-search.disableCache',
      '-loggerLevel=ERROR',
      '-memory.allowedBytes=64MiB',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const url = `http://127.0.0.1:${listenPort}`;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  t.after(stop);

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`VictoriaMetrics exited (${child.exitCode}): ${stderr}`);
    try {
      const response = await fetch(`${url}/health`);
      if (response.ok && (await response.text()).trim() === 'OK') break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`VictoriaMetrics did not start on ${url}: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  const get = async (path: string, params: Record<string, string>): Promise<unknown> => {
    await fetch(`${url}/internal/force_flush`);
    const response = await fetch(`${url}${path}?${new URLSearchParams(params)}`);
    const text = await response.text();
    if (!response.ok) throw new Error(`${path} ${JSON.stringify(params)}: HTTP ${response.status}: ${text}`);
    return text;
  };

  return {
    url,
    port: listenPort,
    otlpEndpoint: `${url}/opentelemetry`,
    async query(promql) {
      const body = JSON.parse((await get('/api/v1/query', { query: promql })) as string) as {
        data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      const result = new Map<string, number>();
      for (const { metric, value } of body.data.result) result.set(Object.values(metric)[0] ?? '', Number(value[1]));
      return result;
    },
    async series(metric) {
      const text = (await get('/api/v1/export', { 'match[]': `{__name__="${metric}"}` })) as string;
      return text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => (JSON.parse(line) as { metric: Record<string, string> }).metric);
    },
    stop,
  };
}
