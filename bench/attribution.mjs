// Where the preload's per-call cost goes, stage by stage, measured two ways:
//
//   node bench/attribution.mjs [--measure instructions|cpu]
//                              [--workloads fetch-json,fetch-sse,undici-json,undici-sse,foreign-fetch,foreign-undici]
//                              [--node PATH] [--json FILE]
//     instructions:  [--warmup 2000] [--low 200] [--high 1200]
//     cpu:           [--warmup 2000] [--calls 20000] [--runs 5] [--concurrency 1]
//
// For each workload, the client (bench/client.mjs) runs with no preload (A), then with each stage of
// the preload added in turn (bench/attribution/variant.mjs), then with the whole preload (B). The
// difference between consecutive variants is what that stage costs per call.
//
// --measure instructions (the default): user-space instructions counted by valgrind's callgrind,
// concurrency 1. Each variant runs twice, LOW and HIGH calls after the same WARMUP calls;
// (instructions(HIGH) - instructions(LOW)) / (HIGH - LOW) is the cost of one call with start-up
// and warm-up cancelled out. The warm-up must be long enough for V8 to have compiled the hot code:
// after 100 warm-up calls (this script's first version), undici JSON without the preload counted
// 1,015k instructions per call, most of them compiling; after 3,000, 206k. Repeatable to about 1 %
// between identical runs on a quiet machine, but not under heavy load: how many event-loop turns a
// call takes depends on when the server's answer arrives. Each variant costs two valgrind runs of
// about a minute. It cannot see the kernel: a system call is a few hundred instructions to
// callgrind, whatever the kernel spends on it.
//
// --measure cpu: the CPU time (user + system, every thread) the client reports for its measured
// calls, median of RUNS runs with the variants interleaved in each round. This is what the
// system calls of the sink really cost (the kernel's share), at any concurrency, but it is noisier:
// about +-3 % between runs on a quiet machine. Each run takes a few seconds.
//
// foreign-*: calls to a host that is not Mistral's (MISTRAL_USAGE_HOSTS unset), A against B only:
// what an app pays for the preload on the rest of its traffic.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    workloads: { type: "string", default: "fetch-json,fetch-sse,undici-json,undici-sse,foreign-fetch,foreign-undici" },
    measure: { type: "string", default: "instructions" },
    low: { type: "string", default: "200" },
    high: { type: "string", default: "1200" },
    calls: { type: "string", default: "20000" },
    warmup: { type: "string", default: "2000" },
    runs: { type: "string", default: "5" },
    concurrency: { type: "string", default: "1" },
    node: { type: "string", default: process.execPath },
    json: { type: "string" },
  },
});
const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const MEASURE = values.measure;
if (MEASURE !== "instructions" && MEASURE !== "cpu") throw new Error(`--measure is instructions or cpu, not ${MEASURE}`);
const CPU = MEASURE === "cpu";
const CONCURRENCY = CPU ? Number(values.concurrency) : 1;
const LOW = Number(values.low);
const HIGH = Number(values.high);
const NODE = values.node;
const nodeVersion = spawnSync(NODE, ["--version"], { encoding: "utf8" }).stdout.trim();

const STAGES = [
  { id: "A", label: "no preload", variant: undefined },
  { id: "channels", label: "diagnostics channels published (no-op subscribers)", variant: "channels" },
  { id: "match", label: "tap handlers + matchCall per request", variant: "match" },
  { id: "forward", label: "per-request wrapping + body chunks forwarded", variant: "forward" },
  { id: "extract", label: "decode + extract + usage event (ObservedCall)", variant: "extract" },
  { id: "format", label: "rows formatted, batched per tick (no I/O)", variant: "format" },
  { id: "write", label: "one write() per batch", variant: "write" },
  { id: "B", label: "CSV sink as shipped: + one stat() of the path per batch", variant: "full" },
];

const server = spawn(NODE, [path.join(BENCH, "server.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve, reject) => {
  server.stdout.once("data", (data) => resolve(JSON.parse(String(data)).url));
  server.once("exit", () => reject(new Error("bench server exited")));
});
const port = new URL(url).port;
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "mistral-usage-attribution-"));

/** The client's command line and environment for one stage. */
function clientRun(stage, api, mode, calls, warmup, foreign) {
  const args = [];
  if (stage.variant === "full") args.push("--import", path.join(ROOT, "register.js"));
  else if (stage.variant !== undefined) args.push("--import", path.join(BENCH, "attribution", "variant.mjs"));
  args.push(path.join(BENCH, "client.mjs"), "--url", url, "--api", api, "--mode", mode, "--calls", String(calls), "--warmup", String(warmup));
  args.push("--concurrency", String(CONCURRENCY));
  const env = { ...process.env, MISTRAL_USAGE_LOG: path.join(logDir, "usage.csv"), ATTRIBUTION_VARIANT: stage.variant ?? "" };
  if (foreign) delete env.MISTRAL_USAGE_HOSTS;
  else env.MISTRAL_USAGE_HOSTS = `127.0.0.1:${port}`;
  return { args, env };
}

function instructions(stage, api, mode, calls, foreign) {
  const run = clientRun(stage, api, mode, calls, Number(values.warmup), foreign);
  // --single-threaded: no concurrent compilation or GC threads, whose scheduling under valgrind
  // made counts vary by 5 % between identical runs (1 % with it).
  const args = ["--tool=callgrind", "--callgrind-out-file=/dev/null", NODE, "--single-threaded", ...run.args];
  const result = spawnSync("valgrind", args, { env: run.env, encoding: "utf8", maxBuffer: 64 << 20 });
  const match = /Collected : (\d+)/.exec(result.stderr);
  if (result.status !== 0 || match === null) throw new Error(`valgrind failed (${stage.id} ${api} ${mode}):\n${result.stderr.slice(-2000)}`);
  return Number(match[1]);
}

/** One run's CPU time per measured call, in microseconds (user + system, all threads), and its calls per second. */
function cpuSample(stage, api, mode, foreign) {
  const run = clientRun(stage, api, mode, Number(values.calls), Number(values.warmup), foreign);
  fs.rmSync(run.env.MISTRAL_USAGE_LOG, { force: true });
  const result = spawnSync(NODE, run.args, { env: run.env, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`client failed (${stage.id} ${api} ${mode}):\n${result.stderr.slice(-2000)}`);
  const sample = JSON.parse(result.stdout.trim().split("\n").at(-1));
  return { cpu: sample.cpuMicrosPerCall, rate: sample.callsPerSec };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const perCall = (stage, api, mode, foreign) =>
  (instructions(stage, api, mode, HIGH, foreign) - instructions(stage, api, mode, LOW, foreign)) / (HIGH - LOW);

const results = [];
try {
  for (const workload of values.workloads.split(",")) {
    const foreign = workload.startsWith("foreign-");
    const [api, mode] = foreign ? [workload.slice("foreign-".length), "json"] : workload.split("-");
    const stages = foreign ? [STAGES[0], STAGES.at(-1)] : STAGES;
    const row = { workload, node: nodeVersion, measure: MEASURE, concurrency: CONCURRENCY, perCall: {}, runs: {} };
    if (CPU) {
      // Interleaved, so that a change in the machine's load touches every stage alike.
      for (let round = 0; round < Number(values.runs); round++) {
        for (const stage of stages) (row.runs[stage.id] ??= []).push(cpuSample(stage, api, mode, foreign));
      }
      for (const stage of stages) {
        row.perCall[stage.id] = median(row.runs[stage.id].map((sample) => sample.cpu));
        const spread = row.runs[stage.id].map((sample) => sample.cpu.toFixed(1)).join(" ");
        process.stderr.write(`[attribution] ${nodeVersion} ${workload} c${CONCURRENCY} ${stage.id}: ${row.perCall[stage.id].toFixed(1)} µs CPU per call [${spread}]\n`);
      }
      row.throughputBA = median(row.runs.B.map((sample) => sample.rate)) / median(row.runs.A.map((sample) => sample.rate));
    } else {
      for (const stage of stages) {
        row.perCall[stage.id] = perCall(stage, api, mode, foreign);
        process.stderr.write(`[attribution] ${nodeVersion} ${workload} ${stage.id}: ${Math.round(row.perCall[stage.id])} instructions per call\n`);
      }
    }
    results.push(row);
  }
} finally {
  server.kill("SIGTERM");
  fs.rmSync(logDir, { recursive: true, force: true });
}

const amount = (n) => (CPU ? `${n.toFixed(1)} µs` : `${(n / 1000).toFixed(1)}k`);
const pct = (n, of) => `${((100 * n) / of).toFixed(1)} %`;
console.log(
  CPU
    ? `preload cost per call in CPU time (user + system), node ${nodeVersion}, concurrency ${CONCURRENCY}, median of ${values.runs} runs of ${values.calls} calls`
    : `preload cost per call in instructions (callgrind), node ${nodeVersion}, concurrency 1, calls ${LOW}..${HIGH}`,
);
for (const row of results) {
  const a = row.perCall.A;
  const unit = CPU ? "CPU per call" : "instructions per call";
  const wall = CPU ? `; throughput B/A ${row.throughputBA.toFixed(3)}` : "";
  console.log(`\n${row.workload}: A = ${amount(a)} ${unit}; B - A = ${amount(row.perCall.B - a)} (${pct(row.perCall.B - a, a)} of A)${wall}`);
  const ids = Object.keys(row.perCall);
  for (let i = 1; i < ids.length; i++) {
    const stage = STAGES.find((s) => s.id === ids[i]);
    const delta = row.perCall[ids[i]] - row.perCall[ids[i - 1]];
    console.log(`  ${amount(delta).padStart(9)}  ${pct(delta, a).padStart(7)}  ${row.workload.startsWith("foreign-") ? "the whole preload, on calls it does not log" : stage.label}`);
  }
}
if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
