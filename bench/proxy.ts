/**
 * The proxy part of `npm run bench` (also `node --import tsx bench/proxy.ts [--quick] [--rounds N]`):
 * what `mistral-usage run` and `mistral-usage proxy` add to a Python app's calls.
 *
 * The server is bench/server.mjs over HTTPS (a CA made here, as the real API is HTTPS). Every sample
 * is a fresh Debian Python process (bench/proxy-client.py, requests or httpx) that makes its calls
 * and reports per-call latencies:
 *   A  direct: https://127.0.0.1:PORT, trusting the bench CA (REQUESTS_CA_BUNDLE, SSL_CERT_FILE);
 *   R  through `mistral-usage run --upstream https://127.0.0.1:PORT -- python ...` calling
 *      https://api.mistral.ai (CONNECT, TLS to the proxy, the proxy's own TLS to the server);
 *   R0 the same with the early ACK off (MISTRAL_USAGE_BENCH_NO_EARLY_ACK=1): the Nagle stall;
 *   P  to `mistral-usage proxy --upstream https://127.0.0.1:PORT` as a base URL (plain HTTP to it).
 * Variants are interleaved and rotated per round; "added" is the median over rounds of the
 * within-round difference to A. Every R and P call must leave exactly one row.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CertificateAuthority } from "../src/proxy/ca.js";

const ROOT = path.resolve(fileURLToPath(new URL("..", import.meta.url)));
const CLI = path.join(ROOT, "dist", "src", "cli", "main.js");
const CLIENT = path.join(ROOT, "bench", "proxy-client.py");
const SERVER = path.join(ROOT, "bench", "server.mjs");
const PYTHON = "/usr/bin/python3";

type Variant = "A" | "R" | "R0" | "P";
const VARIANT_NAMES: Record<Variant, string> = {
  A: "direct (HTTPS)",
  R: "through run's proxy (HTTPS_PROXY)",
  R0: "run's proxy, early ACK off",
  P: "through proxy (base URL)",
};

interface Workload {
  readonly id: string;
  readonly lib: "requests" | "httpx";
  readonly mode: "json" | "sse";
  readonly threads: number;
  readonly calls: number;
  readonly warmup: number;
  readonly variants: readonly Variant[];
}

export interface ProxySample {
  readonly workload: string;
  readonly variant: Variant;
  readonly round: number;
  readonly p50: number;
  readonly p99: number;
  readonly firstP50: number;
  readonly callsPerSec: number;
  readonly rowsOk: boolean;
}

export interface ProxyRow {
  readonly workload: string;
  readonly metric: string;
  readonly unit: string;
  /** Median over rounds per variant, and (for non-A) the median within-round difference or ratio to A. */
  readonly cells: Partial<Record<Variant, { value: number; vsA?: number }>>;
  readonly kind: "delta" | "ratio";
}

function workloads(quick: boolean): Workload[] {
  const calls = quick ? 60 : 200;
  const all: Variant[] = ["A", "R", "P"];
  return [
    { id: "requests json c1", lib: "requests", mode: "json", threads: 1, calls, warmup: 10, variants: ["A", "R", "R0", "P"] },
    { id: "requests sse c1", lib: "requests", mode: "sse", threads: 1, calls, warmup: 10, variants: all },
    { id: "httpx json c1", lib: "httpx", mode: "json", threads: 1, calls, warmup: 10, variants: all },
    { id: "httpx sse c1", lib: "httpx", mode: "sse", threads: 1, calls, warmup: 10, variants: all },
    { id: "requests json c8", lib: "requests", mode: "json", threads: 8, calls: calls * 4, warmup: 5, variants: all },
  ];
}

function run(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key === "NODE_OPTIONS" || key.startsWith("MISTRAL_USAGE_") || /_proxy$/i.test(key)) delete env[key];
  return env;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  return v.length % 2 === 1 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
}

function countRows(file: string): number {
  try {
    return fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "").length - 1;
  } catch {
    return 0;
  }
}

/** Starts a process that prints its address on its first stdout line. */
async function startService(argv: string[], env: NodeJS.ProcessEnv): Promise<{ line: string; stop(): void }> {
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    let text = "";
    child.stdout.on("data", (c: Buffer) => {
      text += c.toString();
      if (text.includes("\n")) resolve(text.slice(0, text.indexOf("\n")));
    });
    child.once("exit", (code) => reject(new Error(`${argv.join(" ")} exited with ${code}`)));
  });
  return { line, stop: () => child.kill("SIGTERM") };
}

export async function proxyBench(options: { quick: boolean; rounds: number; progress: (message: string) => void }): Promise<{ samples: ProxySample[]; rows: ProxyRow[]; markdown: string }> {
  if (spawnSync(PYTHON, ["-c", "import requests, httpx"]).status !== 0) {
    options.progress("proxy: skipped (Debian's python3-requests and python3-httpx are needed: .ci/proxy.sh installs them)");
    return { samples: [], rows: [], markdown: "" };
  }
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "mistral-usage-bench-proxy-")));
  const ca = new CertificateAuthority({ permitted: ["127.0.0.1"] });
  const leaf = ca.leafFor("127.0.0.1");
  const caFile = path.join(dir, "ca.pem");
  fs.writeFileSync(caFile, ca.certPem);
  fs.writeFileSync(path.join(dir, "key.pem"), leaf.key);
  fs.writeFileSync(path.join(dir, "cert.pem"), leaf.cert);
  const env = baseEnv();
  const server = await startService([process.execPath, SERVER, "--key", path.join(dir, "key.pem"), "--cert", path.join(dir, "cert.pem")], env);
  const serverUrl = (JSON.parse(server.line) as { url: string }).url;
  const proxyLog = path.join(dir, "proxy.csv");
  const proxy = await startService([process.execPath, CLI, "proxy", "--listen", "127.0.0.1:0", "--upstream", serverUrl], { ...env, NODE_EXTRA_CA_CERTS: caFile, MISTRAL_USAGE_LOG: proxyLog });
  const proxyUrl = /^listening on (\S+) /.exec(proxy.line)![1]!;
  const samples: ProxySample[] = [];
  let proxyCalls = 0;
  try {
    options.progress(`proxy: server ${serverUrl}, proxy ${proxyUrl}, ${options.rounds} rounds`);
    let n = 0;
    for (let round = 0; round < options.rounds; round++) {
      for (const w of workloads(options.quick)) {
        const order = w.variants.map((_, i) => w.variants[(i + round) % w.variants.length]!);
        for (const variant of order) {
          const args = (url: string): string[] => [PYTHON, CLIENT, w.lib, w.mode, url, String(w.calls), String(w.warmup), String(w.threads)];
          const log = path.join(dir, `run-${n++}.csv`);
          let argv: string[];
          let sampleEnv: NodeJS.ProcessEnv;
          if (variant === "A") {
            argv = args(serverUrl);
            sampleEnv = { ...env, REQUESTS_CA_BUNDLE: caFile, SSL_CERT_FILE: caFile };
          } else if (variant === "P") {
            argv = args(proxyUrl);
            sampleEnv = env;
          } else {
            argv = [process.execPath, CLI, "run", "-q", "--upstream", serverUrl, "--", ...args("https://api.mistral.ai")];
            sampleEnv = { ...env, NODE_EXTRA_CA_CERTS: caFile, MISTRAL_USAGE_LOG: log, ...(variant === "R0" ? { MISTRAL_USAGE_BENCH_NO_EARLY_ACK: "1" } : {}) };
          }
          const r = await run(argv, sampleEnv);
          if (r.code !== 0) throw new Error(`proxy bench ${w.id} ${variant}: exit ${r.code}\n${r.stderr}`);
          const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { latencies: number[]; first: number[]; wallMs: number; calls: number };
          const expected = w.calls + w.warmup * w.threads;
          if (variant === "P") proxyCalls += expected;
          const lat = [...out.latencies].sort((a, b) => a - b);
          samples.push({
            workload: w.id,
            variant,
            round,
            p50: quantile(lat, 0.5),
            p99: quantile(lat, 0.99),
            firstP50: median(out.first),
            callsPerSec: (out.calls / out.wallMs) * 1000,
            rowsOk: variant === "R" || variant === "R0" ? countRows(log) === expected : true,
          });
        }
      }
      options.progress(`proxy: round ${round + 1}/${options.rounds} done`);
    }
  } finally {
    proxy.stop();
    server.stop();
  }
  // The proxy writes its last rows as it stops.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const proxyRowsOk = countRows(proxyLog) === proxyCalls;
  fs.rmSync(dir, { recursive: true, force: true });

  const rows: ProxyRow[] = [];
  for (const w of workloads(options.quick)) {
    const of = samples.filter((s) => s.workload === w.id);
    type Metric = [string, string, "delta" | "ratio", (s: ProxySample) => number];
    const firstChunk: Metric[] = w.mode === "sse" ? [["first chunk p50", "ms", "delta", (s) => s.firstP50]] : [];
    const metrics: Metric[] = [
      ["p50 latency", "ms", "delta", (s) => s.p50],
      ["p99 latency", "ms", "delta", (s) => s.p99],
      ...firstChunk,
      ["throughput", "calls/s", "ratio", (s) => s.callsPerSec],
    ];
    for (const [metric, unit, kind, get] of metrics) {
      const cells: ProxyRow["cells"] = {};
      for (const variant of w.variants) {
        const mine = of.filter((s) => s.variant === variant);
        const vsA = mine.map((s) => {
          const a = of.find((x) => x.variant === "A" && x.round === s.round);
          if (a === undefined) return NaN;
          return kind === "delta" ? get(s) - get(a) : get(s) / get(a);
        });
        cells[variant] = { value: median(mine.map(get)), ...(variant === "A" ? {} : { vsA: median(vsA) }) };
      }
      rows.push({ workload: w.id, metric, unit, cells, kind });
    }
  }
  const rowsOk = samples.every((s) => s.rowsOk) && proxyRowsOk;
  return { samples, rows, markdown: renderProxyMarkdown(rows, rowsOk) };
}

function renderProxyMarkdown(rows: readonly ProxyRow[], rowsOk: boolean): string {
  const fmt = (v: number | undefined, digits = 2): string => (v === undefined || !Number.isFinite(v) ? "n/a" : v.toFixed(digits));
  const cell = (row: ProxyRow, variant: Variant): string => {
    const c = row.cells[variant];
    if (c === undefined) return "";
    const digits = row.unit === "calls/s" ? 0 : 2;
    if (c.vsA === undefined) return fmt(c.value, digits);
    const vs = row.kind === "delta" ? `${c.vsA >= 0 ? "+" : ""}${fmt(c.vsA)}` : `×${fmt(c.vsA)}`;
    return `${fmt(c.value, digits)} (${vs})`;
  };
  const lines = [
    `| workload | metric | ${VARIANT_NAMES.A} | ${VARIANT_NAMES.R} | ${VARIANT_NAMES.R0} | ${VARIANT_NAMES.P} |`,
    "| --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.workload} | ${r.metric} (${r.unit}) | ${cell(r, "A")} | ${cell(r, "R")} | ${cell(r, "R0")} | ${cell(r, "P")} |`),
    "",
    `Every call through run's proxy and through proxy left exactly one row: ${rowsOk ? "yes" : "NO"}.`,
  ];
  return lines.join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, rounds: { type: "string" } } });
  const rounds = values.rounds !== undefined ? Number(values.rounds) : values.quick ? 2 : 5;
  const t0 = performance.now();
  const result = await proxyBench({ quick: values.quick, rounds, progress: (m) => console.error(m) });
  console.log(`\nmistral-usage proxy benchmark: node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "?"}, ${rounds} rounds, ${Math.round((performance.now() - t0) / 1000)} s`);
  console.log("Cells: median over rounds; (+x) = median within-round difference to direct, (×x) = ratio.");
  console.log(result.markdown);
}
