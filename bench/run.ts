/**
 * `npm run bench`: what the preload costs, against an uninstrumented client (A), the logger a
 * user would otherwise write (C, bench/peers/msw-logger.mjs) and the standard way to observe fetch
 * (E, OpenTelemetry's undici instrumentation, bench/peers/otel-undici.mjs), all in the same run.
 * The "foreign" workloads call a host that is not Mistral's: what the rest of an app's traffic pays.
 *
 *   node --import tsx bench/run.ts [--quick] [--out results.json] [--rounds N] [--only REGEX]
 *                                  [--preload FILE] [--with FILE] [--cli-before REV|DIR]
 *
 * --only runs the parts whose name matches (workload ids, "start-up", "memory", "sink", "pipeline",
 * "otlp": the metrics export, bench/otlp-part.ts; "proxy": Python through the proxies, bench/proxy.ts;
 * "cli": the `mistral-usage` command on a million-row log, against --cli-before, default 2fab28e,
 * and a minimal script; see bench/cli.ts);
 * --preload makes B load another build of the preload; --with adds a variant D that loads another
 * build (say a copy of dist/ from before a change, kept inside the checkout so that its imports
 * resolve), so that a fix is measured against the code it replaces in the same run.
 *
 * A lean mock server (bench/server.mjs) runs in its own process. Every sample is a fresh plain
 * `node` process running bench/client.mjs (or bench/sink.mjs) with no preload (A), with
 * `--import register.js` (B) or with `--import bench/peers/msw-logger.mjs` (C). The variants are
 * interleaved, A B C, then B C A, then C A B, ..., so that drift of a shared machine hits all
 * three alike; ratios are taken within a round and their median is reported.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runOtlpPart, type OtlpPart } from "./otlp-part.js";
import { runCliBench, type CliBenchResult } from "./cli.js";

const ROOT = path.resolve(fileURLToPath(new URL("..", import.meta.url)));
const BENCH = path.join(ROOT, "bench");
const PIPELINE = path.join(BENCH, "pipeline.mjs");
const PEER = path.join(BENCH, "peers", "msw-logger.mjs");
const OTEL_PEER = path.join(BENCH, "peers", "otel-undici.mjs");
const CLIENT = path.join(BENCH, "client.mjs");
const SINK = path.join(BENCH, "sink.mjs");
const SERVER = path.join(BENCH, "server.mjs");

type Variant = "A" | "B" | "C" | "D" | "E";
type Compared = Exclude<Variant, "A">;
const VARIANT_NAMES: Record<Variant, string> = {
  A: "no preload",
  B: "mistral-usage-log preload",
  C: "peer: @mswjs/interceptors FetchInterceptor logger",
  D: "another build of the preload (--with)",
  E: "peer: OpenTelemetry's undici instrumentation, spans dropped (observes, logs nothing)",
};

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    rounds: { type: "string" },
    only: { type: "string" },
    preload: { type: "string" },
    with: { type: "string" },
    "cli-before": { type: "string" },
  },
});
const REGISTER = args.preload !== undefined ? path.resolve(args.preload) : path.join(ROOT, "register.js");
const WITH = args.with !== undefined ? path.resolve(args.with) : undefined;
const VARIANTS: readonly Variant[] = WITH === undefined ? ["A", "B", "C", "E"] : ["A", "B", "C", "D", "E"];
const COMPARED: readonly Compared[] = WITH === undefined ? ["B", "C", "E"] : ["B", "C", "D", "E"];
const QUICK = args.quick;
const ROUNDS = args.rounds !== undefined ? Number(args.rounds) : QUICK ? 2 : 5;
const ONLY = args.only !== undefined ? new RegExp(args.only) : undefined;
const selected = (id: string): boolean => ONLY === undefined || ONLY.test(id);

// ---------------------------------------------------------------------------------------------
// Workloads

interface ClientWorkload {
  readonly id: string;
  readonly api: "fetch" | "undici";
  readonly mode: "json" | "sse" | "mixed";
  readonly concurrency: number;
  /** Measured calls: a fixed number, or as many as start within a fixed time. */
  readonly calls?: number;
  readonly durationSeconds?: number;
  readonly warmup: number;
  /** The peer only intercepts global fetch: it cannot see undici.request(). */
  readonly variants: readonly Variant[];
  /** Calls to a host that is not Mistral's (MISTRAL_USAGE_HOSTS names another): what the rest of an app's traffic pays. */
  readonly foreign?: boolean;
}

// Each sample measures for a fixed time after a fixed warm-up, so that a run takes the same time
// however fast the machine is. The warm-up is long enough for V8 to have compiled the hot code of
// the client and of the preload (with 300 calls, B was still paying its JIT compilation in the
// measured second: undici JSON c1 0.63 instead of 0.79); what the warm-up itself costs is reported
// apart, as the CPU time of the warm-up calls.
const DURATION = QUICK ? 0.4 : 1;
const WARMUP = QUICK ? 1000 : 2000;
const workload = (api: "fetch" | "undici", mode: "json" | "sse", concurrency: number): ClientWorkload => ({
  id: `${api} ${mode} c${concurrency}`,
  api,
  mode,
  concurrency,
  durationSeconds: DURATION,
  warmup: WARMUP,
  variants: api === "fetch" ? VARIANTS : VARIANTS.filter((v) => v !== "C"),
});
const foreign = (api: "fetch" | "undici", concurrency: number): ClientWorkload => ({
  ...workload(api, "json", concurrency),
  id: `${api} foreign c${concurrency}`,
  foreign: true,
});
const ALL_WORKLOADS: readonly ClientWorkload[] = [
  workload("fetch", "json", 1),
  workload("fetch", "json", 32),
  workload("fetch", "sse", 1),
  workload("fetch", "sse", 32),
  workload("undici", "json", 1),
  workload("undici", "json", 32),
  workload("undici", "sse", 1),
  workload("undici", "sse", 32),
  foreign("fetch", 1),
  foreign("undici", 32),
];
// --quick: each client and body kind once, both concurrencies, the streams at 1 for the first chunk.
const QUICK_SET = new Set(["fetch json c1", "fetch sse c1", "undici json c32", "undici sse c1", "undici foreign c32"]);
const WORKLOADS = QUICK ? ALL_WORKLOADS.filter((w) => QUICK_SET.has(w.id)) : ALL_WORKLOADS;
const MEMORY_CALLS = QUICK ? 1500 : 20_000;
const MEMORY: ClientWorkload = {
  id: "memory fetch mixed c32",
  api: "fetch",
  mode: "mixed",
  concurrency: 32,
  calls: MEMORY_CALLS,
  warmup: QUICK ? 200 : 1000,
  variants: VARIANTS,
};
const STARTUP_RUNS = QUICK ? 6 : 20;
const SINK_ROUNDS = QUICK ? 1 : 2;
const SINK_ROWS_PER_WRITER = QUICK ? 600 : 5000;
const SINK_WRITERS = 8;
const SINK_PROCESSES = 4;
type SinkVariant = "A" | "B" | "C";
const SINK_VARIANTS: readonly SinkVariant[] = ["A", "B", "C"];
const SINK_KIND: Record<SinkVariant, string> = { A: "raw", B: "csvlog", C: "append-file" };
const SINK_NAMES: Record<SinkVariant, string> = {
  A: "raw writeSync of a fixed row (the limit)",
  B: "CsvLog.append (dist/src/sink/csv-file.js)",
  C: "fs.appendFileSync per row (what the peer does)",
};

// ---------------------------------------------------------------------------------------------
// Processes

// The children must measure exactly what they are told to: no inherited --import from NODE_OPTIONS.
const baseEnv: NodeJS.ProcessEnv = { ...process.env };
delete baseEnv["NODE_OPTIONS"];
delete baseEnv["MISTRAL_USAGE_DISABLE"];
delete baseEnv["MISTRAL_USAGE_VERBOSE"];

const preloadArgs = (variant: Variant): string[] =>
  variant === "A" ? [] : ["--import", variant === "B" ? REGISTER : variant === "C" ? PEER : variant === "E" ? OTEL_PEER : WITH!];

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runNode(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function lastJsonLine<T>(finished: Finished, what: string): T {
  const line = finished.stdout.trim().split("\n").pop() ?? "";
  if (finished.code !== 0 || !line.startsWith("{")) {
    throw new Error(`${what} failed (exit ${finished.code}):\n${finished.stdout}\n${finished.stderr}`);
  }
  return JSON.parse(line) as T;
}

interface Server {
  readonly url: string;
  readonly hostPort: string;
  readonly process: ChildProcess;
}

function startServer(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SERVER, "--chunks", "50"], { env: baseEnv, stdio: ["ignore", "pipe", "inherit"] });
    let buffered = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      buffered += text;
      const newline = buffered.indexOf("\n");
      if (newline === -1) return;
      const { url } = JSON.parse(buffered.slice(0, newline)) as { url: string };
      resolve({ url, hostPort: new URL(url).host, process: child });
    });
    child.on("error", reject);
    child.on("exit", (code) => reject(new Error(`the bench server exited (${code})`)));
  });
}

async function serverStats(server: Server): Promise<{ cpuMicros: number; requests: number }> {
  const response = await fetch(`${server.url}/__stats`);
  return (await response.json()) as { cpuMicros: number; requests: number };
}

// ---------------------------------------------------------------------------------------------
// Samples

interface ClientResult {
  calls: number;
  warmup: number;
  elapsedMs: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  firstChunkP50Ms: number | null;
  firstChunkP99Ms: number | null;
  chunksPerStream: number;
  cpuMicrosPerCall: number;
  warmupCpuMicrosPerCall: number | null;
  peakRssMB: number;
  rssAfterWarmupMB?: number;
  rssAfterCallsMB?: number;
  heapAfterWarmupMB?: number;
  heapAfterCallsMB?: number;
}

interface ClientSample extends ClientResult {
  readonly workload: string;
  readonly variant: Variant;
  readonly round: number;
  /** Rows found in this sample's CSV (B and C), and whether that is one per call. */
  readonly rows: number | null;
  readonly rowsOk: boolean;
  /** Share of one core the server used while serving this sample's calls. */
  readonly serverBusy: number;
}

let sampleCounter = 0;

async function clientSample(
  server: Server,
  dir: string,
  workload: ClientWorkload,
  variant: Variant,
  round: number,
  extraNodeArgs: readonly string[] = [],
): Promise<ClientSample> {
  const logPath = path.join(dir, `sample-${++sampleCounter}-${variant}.csv`);
  // A foreign workload calls the same server, which then does not count as Mistral's.
  const env = { ...baseEnv, MISTRAL_USAGE_HOSTS: workload.foreign === true ? "127.0.0.1:9" : server.hostPort, MISTRAL_USAGE_LOG: logPath };
  const argv = [
    ...extraNodeArgs,
    ...preloadArgs(variant),
    CLIENT,
    ...["--url", server.url, "--api", workload.api, "--mode", workload.mode],
    ...["--concurrency", String(workload.concurrency), "--warmup", String(workload.warmup)],
    ...(workload.calls !== undefined ? ["--calls", String(workload.calls)] : ["--duration", String(workload.durationSeconds)]),
    ...(workload === MEMORY ? ["--memory"] : []),
  ];
  const before = await serverStats(server);
  const result = lastJsonLine<ClientResult>(await runNode(argv, env), `${workload.id} ${variant}`);
  const after = await serverStats(server);
  const served = after.requests - before.requests - 1;
  const serverMicrosPerCall = (after.cpuMicros - before.cpuMicros) / Math.max(1, served);
  let rows: number | null = null;
  if (variant !== "A" && variant !== "E") {
    rows = fs.existsSync(logPath) ? countLines(fs.readFileSync(logPath, "utf8")) - 1 : 0;
    fs.rmSync(logPath, { force: true });
  }
  const expected = workload.foreign === true ? 0 : result.calls + result.warmup;
  return {
    ...result,
    workload: workload.id,
    variant,
    round,
    rows,
    rowsOk: rows === null || rows === expected,
    serverBusy: (serverMicrosPerCall * result.callsPerSec) / 1e6,
  };
}

function countLines(text: string): number {
  let lines = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) lines++;
  return lines;
}

interface StartupSample {
  readonly variant: Variant;
  /** The whole process, spawn to exit, as the parent sees it. */
  readonly ms: number;
  /** When the app's first line ran, in ms after the process started (its own performance.now()). */
  readonly appStartsMs: number;
}

// The -e code is the app: it reports when it ran. Spawn-to-exit moves by several ms between runs on
// a busy machine; the child's own clock, read before it exits, moves less.
const STARTUP_APP = "process.stdout.write(String(performance.now()))";

function startupSample(dir: string, variant: Variant): StartupSample {
  const env = { ...baseEnv, MISTRAL_USAGE_HOSTS: "127.0.0.1:9", MISTRAL_USAGE_LOG: path.join(dir, `startup-${variant}.csv`) };
  const start = performance.now();
  const result = spawnSync(process.execPath, [...preloadArgs(variant), "-e", STARTUP_APP], { env, stdio: ["ignore", "pipe", "ignore"] });
  const ms = performance.now() - start;
  if (result.status !== 0) throw new Error(`start-up ${variant} exited ${result.status}`);
  return { variant, ms, appStartsMs: Number(result.stdout.toString()) };
}

interface PipelineResult {
  readonly part: string;
  readonly microsPerCall: number;
}

async function pipeline(): Promise<PipelineResult[]> {
  const argv = [PIPELINE, "--json", ...(QUICK ? ["--quick"] : [])];
  return lastJsonLine<{ results: PipelineResult[] }>(await runNode(argv, baseEnv), "pipeline").results;
}

interface SinkResult {
  rows: number;
  start: number;
  end: number;
  elapsedMs: number;
  rowsPerSec: number;
}

interface SinkSample {
  readonly workload: string;
  readonly variant: Variant;
  readonly round: number;
  readonly rowsPerSec: number;
  readonly rows: number;
  readonly rowsInFile: number;
  /** Every row there, each whole, one header. */
  readonly rowsOk: boolean;
}

const ROW_PATTERN = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00,mistral-small-2603,23,\d+,\d+$/;
const HEADER_LINE = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens";

async function sinkSample(dir: string, processes: number, batch: "immediate" | "tick", variant: SinkVariant, round: number): Promise<SinkSample> {
  const file = path.join(dir, `sink-${++sampleCounter}-${variant}.csv`);
  const argv = [
    SINK,
    ...["--file", file, "--sink", SINK_KIND[variant], "--writers", String(SINK_WRITERS)],
    ...["--rows", String(SINK_ROWS_PER_WRITER), "--batch", batch],
  ];
  // The references (A, C) are not tested on creating the file; CsvLog (B) is, so it starts from nothing.
  if (variant !== "B") fs.writeFileSync(file, `${HEADER_LINE}\n`);
  let results: SinkResult[];
  if (processes === 1) {
    results = [lastJsonLine<SinkResult>(await runNode(argv, baseEnv), `sink ${variant}`)];
  } else {
    // Start together: each process waits, after loading, until the same instant.
    const startAt = Date.now() + 700;
    const runs = Array.from({ length: processes }, () => runNode([...argv, "--start-at", String(startAt)], baseEnv));
    results = (await Promise.all(runs)).map((finished) => lastJsonLine<SinkResult>(finished, `sink ${variant}`));
  }
  const rows = results.reduce((sum, r) => sum + r.rows, 0);
  const span = Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.start));
  const lines = fs.readFileSync(file, "utf8").split("\n");
  fs.rmSync(file, { force: true });
  const last = lines.pop();
  const body = lines.slice(1);
  const rowsOk = last === "" && lines[0] === HEADER_LINE && body.length === rows && body.every((line) => ROW_PATTERN.test(line));
  return {
    workload: `sink ${processes === 1 ? "1 process" : `${processes} processes`}, ${SINK_WRITERS} writers, ${batch === "tick" ? "same-tick rows batched" : "1 row per write"}`,
    variant,
    round,
    rowsPerSec: (rows * 1000) / span,
    rows,
    rowsInFile: body.length,
    rowsOk,
  };
}

// ---------------------------------------------------------------------------------------------
// Statistics

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), n: values.length };
}

type Comparison = "ratio" | "delta";

interface MetricRow {
  readonly section: string;
  readonly workload: string;
  readonly metric: string;
  readonly unit: string;
  readonly compare: Comparison;
  readonly byVariant: Partial<Record<Variant, Spread>>;
  /** Median over rounds of B/A (or B-A), and of C/A (C-A), each taken within one round. */
  readonly vsA: Partial<Record<Compared, Spread>>;
}

function metricRow<S extends { readonly variant: Variant; readonly round: number }>(
  section: string,
  workload: string,
  metric: string,
  unit: string,
  compare: Comparison,
  samples: readonly S[],
  get: (sample: S) => number | null,
): MetricRow {
  const byVariant: Partial<Record<Variant, Spread>> = {};
  const vsA: Partial<Record<Compared, Spread>> = {};
  for (const variant of VARIANTS) {
    const values = samples.filter((s) => s.variant === variant).map(get).filter((v): v is number => v !== null && Number.isFinite(v));
    if (values.length > 0) byVariant[variant] = spread(values);
  }
  for (const variant of COMPARED) {
    const within: number[] = [];
    for (const sample of samples.filter((s) => s.variant === variant)) {
      const a = samples.find((s) => s.variant === "A" && s.round === sample.round);
      const x = get(sample);
      const y = a === undefined ? null : get(a);
      if (x === null || y === null || !Number.isFinite(x) || !Number.isFinite(y)) continue;
      within.push(compare === "ratio" ? x / y : x - y);
    }
    if (within.length > 0) vsA[variant] = spread(within);
  }
  return { section, workload, metric, unit, compare, byVariant, vsA };
}

// ---------------------------------------------------------------------------------------------
// Targets

interface Target {
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean;
}

function evaluateTargets(rows: readonly MetricRow[], sink: readonly SinkSample[], clientSamples: readonly ClientSample[]): Target[] {
  const targets: Target[] = [];
  const find = (workload: string, metric: string) => rows.find((r) => r.workload === workload && r.metric === metric);
  for (const workload of WORKLOADS.filter((w) => selected(w.id))) {
    const row = find(workload.id, "throughput");
    const ratio = row?.vsA.B;
    const goal = workload.foreign === true ? 0.99 : 0.98;
    if (ratio !== undefined) {
      targets.push({ target: `throughput B/A >= ${goal}: ${workload.id}`, measured: ratio.median.toFixed(3), pass: ratio.median >= goal });
    }
    if (workload.concurrency === 1) {
      const p99 = find(workload.id, "p99 latency")?.vsA.B;
      if (p99 !== undefined) {
        targets.push({ target: `p99 latency B-A <= +0.2 ms: ${workload.id}`, measured: `${signed(p99.median, 3)} ms`, pass: p99.median <= 0.2 });
      }
    }
    if (workload.mode === "sse" && workload.concurrency === 1) {
      const first = find(workload.id, "first chunk p50")?.vsA.B;
      if (first !== undefined) {
        targets.push({
          target: `time to first chunk B-A <= +0.05 ms (no measurable difference): ${workload.id}`,
          measured: `${signed(first.median, 3)} ms`,
          pass: first.median <= 0.05,
        });
      }
    }
  }
  const startup = find("node -e 0", "start-up")?.vsA.B;
  if (startup !== undefined) {
    const appStarts = find("node -e 0", "app code starts at")?.vsA.B;
    const inProcess = appStarts === undefined ? "" : ` (the app's first line runs ${signed(appStarts.median, 1)} ms later)`;
    targets.push({ target: "start-up B-A <= +15 ms", measured: `${signed(startup.median, 1)} ms${inProcess}`, pass: startup.median <= 15 });
  }
  const heap = find(MEMORY.id, "heap growth (after GC)");
  const rss = find(MEMORY.id, "RSS growth (after GC)");
  if (heap?.vsA.B !== undefined && rss?.vsA.B !== undefined) {
    const perCallBytes = (heap.vsA.B.median * 2 ** 20) / MEMORY_CALLS;
    targets.push({
      target: `no memory growth over ${MEMORY_CALLS} calls (B's heap growth - A's <= 1 MB, i.e. < ${Math.round(2 ** 20 / MEMORY_CALLS)} bytes per call)`,
      measured: `heap ${signed(heap.vsA.B.median, 2)} MB (${perCallBytes.toFixed(1)} B/call), RSS ${signed(rss.vsA.B.median, 1)} MB vs A`,
      pass: heap.vsA.B.median <= 1,
    });
  }
  const sinkOne = sink.filter((s) => s.variant === "B" && s.workload.includes("1 process") && s.workload.includes("1 row per write"));
  if (sinkOne.length > 0) {
    const rate = median(sinkOne.map((s) => s.rowsPerSec));
    targets.push({ target: "sink >= 50,000 rows/s in one process (1 row per write)", measured: `${Math.round(rate)} rows/s`, pass: rate >= 50_000 });
  }
  const sinkB = sink.filter((s) => s.variant === "B");
  if (sinkB.length > 0) {
    const lost = sinkB.filter((s) => !s.rowsOk);
    targets.push({
      target: "sink: no row lost or torn (every sample, 1 and 4 processes)",
      measured: lost.length === 0 ? `${sinkB.length} samples, all rows present` : `${lost.length} of ${sinkB.length} samples wrong`,
      pass: lost.length === 0,
    });
  }
  for (const variant of ["B", "D"] as const) {
    const logged = clientSamples.filter((s) => s.variant === variant);
    if (logged.length === 0) continue;
    const wrong = logged.filter((s) => !s.rowsOk);
    targets.push({
      target: `${variant} logged exactly one row per call in every client sample (none for foreign calls)`,
      measured: wrong.length === 0 ? `${logged.length} samples ok` : `${wrong.length} of ${logged.length} samples wrong`,
      pass: wrong.length === 0,
    });
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------
// Output

function signed(value: number, digits: number): string {
  return `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`;
}

function formatValue(value: number, unit: string): string {
  if (unit === "calls/s" || unit === "rows/s" || unit === "us") return Math.round(value).toString();
  if (unit === "ms" && Math.abs(value) >= 20) return value.toFixed(1);
  if (unit === "ms") return value.toFixed(3);
  return value.toFixed(1);
}

function formatSpread(s: Spread | undefined, unit: string): string {
  if (s === undefined) return "n/a";
  return `${formatValue(s.median, unit)} [${formatValue(s.min, unit)}-${formatValue(s.max, unit)}]`;
}

function formatVsA(row: MetricRow, variant: Compared): string {
  const s = row.vsA[variant];
  if (s === undefined) return "n/a";
  return row.compare === "ratio" ? s.median.toFixed(3) : signed(s.median, row.unit === "ms" ? 3 : 1);
}

function renderTable(rows: readonly MetricRow[]): string {
  const header = ["workload", "metric", ...VARIANTS, ...COMPARED.map((v) => `${v} vs A`)];
  const lines: string[][] = [];
  let section = "";
  const out: string[] = [];
  const flush = (): void => {
    if (lines.length === 0) return;
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    out.push(header.map((h, i) => h.padEnd(widths[i]!)).join("  "));
    out.push(widths.map((w) => "-".repeat(w)).join("  "));
    for (const line of lines) out.push(line.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  "));
    lines.length = 0;
  };
  for (const row of rows) {
    if (row.section !== section) {
      flush();
      section = row.section;
      out.push("", section);
    }
    lines.push([
      row.workload,
      `${row.metric} (${row.unit})`,
      ...VARIANTS.map((v) => formatSpread(row.byVariant[v], row.unit)),
      ...COMPARED.map((v) => formatVsA(row, v)),
    ]);
  }
  flush();
  return out.join("\n");
}

function renderMarkdown(rows: readonly MetricRow[], targets: readonly Target[], pipelineResults: readonly PipelineResult[]): string {
  const out: string[] = [];
  let section = "";
  for (const row of rows) {
    if (row.section !== section) {
      section = row.section;
      const columns = ["workload", "metric", ...VARIANTS, ...COMPARED.map((v) => `${v} vs A`)];
      out.push("", `**${section}**`, "", `| ${columns.join(" | ")} |`, `| --- | --- | ${columns.slice(2).map(() => "---:").join(" | ")} |`);
    }
    const cells = [
      row.workload,
      `${row.metric} (${row.unit})`,
      ...VARIANTS.map((v) => formatSpread(row.byVariant[v], row.unit)),
      ...COMPARED.map((v) => formatVsA(row, v)),
    ];
    out.push(`| ${cells.join(" | ")} |`);
  }
  out.push("", "**Targets (B against A, same run)**", "", "| target | measured | |", "| --- | --- | --- |");
  for (const t of targets) out.push(`| ${t.target} | ${t.measured} | ${t.pass ? "holds" : "**missed**"} |`);
  if (pipelineResults.length > 0) {
    out.push("", "**The preload's own cost per call, in one process (bench/pipeline.mjs)**", "", "| part | CPU us per call |", "| --- | ---: |");
    for (const r of pipelineResults) out.push(`| ${r.part.replace(/^( +)/, (m) => "&nbsp;".repeat(m.length * 2))} | ${r.microsPerCall.toFixed(2)} |`);
  }
  return out.join("\n");
}

const progress = (message: string): void => void process.stderr.write(`[bench ${((performance.now() - T0) / 1000).toFixed(0).padStart(3)}s] ${message}\n`);

// ---------------------------------------------------------------------------------------------
// Main

const T0 = performance.now();

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(ROOT, "dist", "register.js"))) {
    throw new Error("dist/ is missing: run `npm run build` first (npm run bench does)");
  }
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "mistral-usage-bench-")));
  const server = await startServer();
  const clientSamples: ClientSample[] = [];
  const startupSamples: (StartupSample & { round: number })[] = [];
  const sinkSamples: SinkSample[] = [];
  const memorySamples: ClientSample[] = [];
  let pipelineResults: PipelineResult[] = [];
  let otlp: OtlpPart | undefined;
  let proxyResult: Awaited<ReturnType<typeof import("./proxy.js").proxyBench>> | undefined;
  let cli: CliBenchResult | undefined;
  try {
    progress(`server at ${server.url}; node ${process.version}; ${QUICK ? "quick" : "full"} run, ${ROUNDS} rounds`);
    const workloads = WORKLOADS.filter((w) => selected(w.id));
    for (let round = 0; round < ROUNDS; round++) {
      for (const workload of workloads) {
        const order = workload.variants.map((_, i) => workload.variants[(i + round) % workload.variants.length]!);
        for (const variant of order) clientSamples.push(await clientSample(server, dir, workload, variant, round));
      }
      progress(`round ${round + 1}/${ROUNDS} done`);
    }

    if (selected("start-up")) {
      for (const variant of VARIANTS) startupSample(dir, variant); // warm the file cache
      for (let round = 0; round < STARTUP_RUNS; round++) {
        for (let i = 0; i < VARIANTS.length; i++) startupSamples.push({ ...startupSample(dir, VARIANTS[(i + round) % VARIANTS.length]!), round });
      }
      progress("start-up done");
    }

    if (selected(MEMORY.id)) {
      for (const variant of VARIANTS) memorySamples.push(await clientSample(server, dir, MEMORY, variant, 0, ["--expose-gc"]));
      progress("memory done");
    }

    if (selected("sink")) {
      for (let round = 0; round < SINK_ROUNDS; round++) {
        for (let i = 0; i < SINK_VARIANTS.length; i++) {
          const variant = SINK_VARIANTS[(i + round) % SINK_VARIANTS.length]!;
          sinkSamples.push(await sinkSample(dir, 1, "immediate", variant, round));
          sinkSamples.push(await sinkSample(dir, 1, "tick", variant, round));
          sinkSamples.push(await sinkSample(dir, SINK_PROCESSES, "immediate", variant, round));
        }
      }
      progress("sink done");
    }

    if (selected("otlp")) {
      otlp = await runOtlpPart({ root: ROOT, register: REGISTER, serverUrl: server.url, serverHostPort: server.hostPort, env: baseEnv, rounds: QUICK ? 4 : 10, calls: QUICK ? 100 : 300, logDir: dir, runNode });
      progress("otlp done");
    }

    if (selected("pipeline") && args.preload === undefined) {
      pipelineResults = await pipeline();
      progress("pipeline done");
    }

    if (selected("proxy") && args.preload === undefined) {
      // Python apps under `mistral-usage run` and `mistral-usage proxy` (bench/proxy.ts).
      const { proxyBench } = await import("./proxy.js");
      proxyResult = await proxyBench({ quick: QUICK, rounds: ROUNDS, progress });
      progress("proxy done");
    }
    if (selected("cli")) {
      cli = await runCliBench({ rows: 1_000_000, rounds: QUICK ? 1 : 3, before: args["cli-before"] ?? "2fab28e", progress });
      progress("cli done");
    }
  } finally {
    server.process.removeAllListeners("exit");
    server.process.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // Summaries.
  const rows: MetricRow[] = [];
  const of = (workload: string) => clientSamples.filter((s) => s.workload === workload);
  for (const w of WORKLOADS.filter((x) => selected(x.id))) {
    rows.push(metricRow("Throughput", w.id, "throughput", "calls/s", "ratio", of(w.id), (s: ClientSample) => s.callsPerSec));
  }
  for (const w of WORKLOADS.filter((x) => selected(x.id) && x.concurrency === 1)) {
    rows.push(metricRow("Latency at concurrency 1", w.id, "p50 latency", "ms", "delta", of(w.id), (s: ClientSample) => s.p50Ms));
    rows.push(metricRow("Latency at concurrency 1", w.id, "p99 latency", "ms", "delta", of(w.id), (s: ClientSample) => s.p99Ms));
  }
  for (const w of WORKLOADS.filter((x) => selected(x.id) && x.mode === "sse")) {
    rows.push(metricRow("Time to first streamed chunk", w.id, "first chunk p50", "ms", "delta", of(w.id), (s: ClientSample) => s.firstChunkP50Ms));
  }
  for (const w of WORKLOADS.filter((x) => selected(x.id))) {
    rows.push(metricRow("Client CPU time per call (user+system)", w.id, "CPU per call", "us", "ratio", of(w.id), (s: ClientSample) => s.cpuMicrosPerCall));
  }
  for (const w of WORKLOADS.filter((x) => selected(x.id))) {
    rows.push(metricRow(`Warm-up: CPU time per call over the first ${WARMUP} calls (JIT compilation included)`, w.id, "warm-up CPU per call", "us", "ratio", of(w.id), (s: ClientSample) => s.warmupCpuMicrosPerCall));
  }
  for (const w of WORKLOADS.filter((x) => selected(x.id) && x.mode === "sse")) {
    rows.push(metricRow("Chunks the app read per stream (server writes 51 events)", w.id, "chunks per stream", "n", "delta", of(w.id), (s: ClientSample) => s.chunksPerStream));
  }
  for (const w of WORKLOADS.filter((x) => selected(x.id))) {
    rows.push(metricRow("Server load (share of one core while serving A's calls)", w.id, "server busy", "%", "delta", of(w.id), (s: ClientSample) => 100 * s.serverBusy));
  }
  if (startupSamples.length > 0) {
    rows.push(metricRow("Start-up", "node -e 0", "start-up", "ms", "delta", startupSamples, (s: StartupSample) => s.ms));
    rows.push(metricRow("Start-up", "node -e 0", "app code starts at", "ms", "delta", startupSamples, (s: StartupSample) => s.appStartsMs));
  }
  if (memorySamples.length > 0) {
    const m = memorySamples;
    const w = `${MEMORY.id}, ${MEMORY_CALLS} calls`;
    rows.push(metricRow("Memory", w, "peak RSS", "MB", "delta", m, (s: ClientSample) => s.peakRssMB));
    rows.push(metricRow("Memory", w, `RSS after ${MEMORY.warmup} warm-up calls`, "MB", "delta", m, (s: ClientSample) => s.rssAfterWarmupMB ?? null));
    rows.push(metricRow("Memory", w, `RSS after ${MEMORY_CALLS} more calls`, "MB", "delta", m, (s: ClientSample) => s.rssAfterCallsMB ?? null));
    rows.push(metricRow("Memory", MEMORY.id, "RSS growth (after GC)", "MB", "delta", m, (s: ClientSample) => (s.rssAfterCallsMB ?? NaN) - (s.rssAfterWarmupMB ?? NaN)));
    rows.push(metricRow("Memory", MEMORY.id, "heap growth (after GC)", "MB", "delta", m, (s: ClientSample) => (s.heapAfterCallsMB ?? NaN) - (s.heapAfterWarmupMB ?? NaN)));
  }
  for (const workload of [...new Set(sinkSamples.map((s) => s.workload))]) {
    rows.push(metricRow("Sink alone (A: raw writeSync, B: CsvLog, C: appendFileSync)", workload, "rows/s", "rows/s", "ratio", sinkSamples.filter((s) => s.workload === workload), (s: SinkSample) => s.rowsPerSec));
  }
  const targets = evaluateTargets(rows, sinkSamples, clientSamples);

  const peerMisses = clientSamples.filter((s) => s.variant === "C" && !s.rowsOk);
  const meta = {
    date: new Date().toISOString(),
    command: `node --import tsx bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage: os.loadavg(),
    quick: QUICK,
    rounds: ROUNDS,
    durationSeconds: Math.round((performance.now() - T0) / 1000),
    variants: {
      A: VARIANT_NAMES.A,
      B: args.preload !== undefined ? `preload ${REGISTER}` : VARIANT_NAMES.B,
      C: VARIANT_NAMES.C,
      ...(WITH !== undefined ? { D: `preload ${WITH}` } : {}),
    },
    sinkVariants: SINK_NAMES,
    workloads: WORKLOADS,
    memoryWorkload: MEMORY,
  };

  console.log(
    `\nmistral-usage-log benchmark: node ${meta.node}, ${meta.cpus} x ${meta.cpuModel}, ${meta.memoryGB} GB, ${meta.quick ? "quick" : "full"} run, ${ROUNDS} rounds, ${meta.durationSeconds} s`,
  );
  console.log(
    `A = no preload, B = --import ${path.relative(ROOT, REGISTER)}, C = --import bench/peers/msw-logger.mjs (fetch only)${WITH !== undefined ? `, D = --import ${WITH}` : ""}, E = --import bench/peers/otel-undici.mjs (observes, logs nothing)`,
  );
  console.log("Cells: median [min-max] over samples; 'vs A' = median over rounds of the within-round ratio or difference.");
  console.log(renderTable(rows));
  if (pipelineResults.length > 0) {
    console.log("\nThe preload's own cost per call, in one process without a network (bench/pipeline.mjs; CPU us per call, median of 7, 5 with --quick)");
    for (const r of pipelineResults) console.log(`${r.microsPerCall.toFixed(2).padStart(9)}  ${r.part}`);
  }
  if (otlp !== undefined) console.log(`\n${otlp.text}`);
  if (proxyResult !== undefined && proxyResult.markdown !== "") {
    console.log("\nPython through the proxies (bench/proxy.ts): cells are medians over rounds; (+x) = within-round difference to direct, (×x) = ratio");
    console.log(proxyResult.markdown);
  }
  console.log("\nTargets");
  for (const t of targets) console.log(`  ${t.pass ? "holds " : "MISSED"}  ${t.target}: ${t.measured}`);
  if (cli !== undefined) {
    console.log(`\nThe mistral-usage command on a ${cli.rows.toLocaleString("en")}-row log (${cli.logMB.toFixed(0)} MB): this build, ${cli.before}, and a minimal script (bench/cli.ts)`);
    console.log(cli.table);
    for (const t of cli.targets) console.log(`  ${t.pass ? "holds " : "MISSED"}  ${t.target}: ${t.measured}`);
  }
  if (peerMisses.length > 0) {
    console.log(`\nNote: the peer (C) logged a wrong number of rows in ${peerMisses.length} sample(s): ${[...new Set(peerMisses.map((s) => `${s.workload} (${s.rows})`))].join(", ")}`);
  }

  if (args.out !== undefined) {
    const json = {
      meta,
      targets,
      summary: rows,
      pipeline: pipelineResults,
      proxy: proxyResult === undefined ? undefined : { rows: proxyResult.rows, markdown: proxyResult.markdown },
      markdown:
        renderMarkdown(rows, targets, pipelineResults) +
        (otlp === undefined ? "" : `\n\n${otlp.markdown}`) +
        (cli === undefined ? "" : `\n\n**The mistral-usage command (bench/cli.ts)**\n\n${cli.markdown}\n`),
      samples: { client: clientSamples, startup: startupSamples, memory: memorySamples, sink: sinkSamples, otlp: otlp?.samples ?? [], proxy: proxyResult?.samples ?? [], cli: cli?.samples ?? [] },
      cli: cli === undefined ? null : { rows: cli.rows, logMB: cli.logMB, before: cli.before, targets: cli.targets, sameOutput: cli.sameOutput },
    };
    fs.writeFileSync(args.out, `${JSON.stringify(json, null, 2)}\n`);
    console.log(`\nwrote ${args.out}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
