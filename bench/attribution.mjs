// Where the preload's per-call cost goes, in CPU instructions counted by valgrind's callgrind:
// stable on a shared, noisy machine, where wall time and even CPU time are not.
//
//   node bench/attribution.mjs [--workloads fetch-json,fetch-sse,undici-json,undici-sse,foreign-fetch,foreign-undici]
//                              [--low 200] [--high 1200] [--node PATH] [--json FILE]
//
// For each workload, the client (bench/client.mjs, concurrency 1) runs under callgrind with no
// preload (A), then with each stage of the preload added in turn (bench/attribution/variant.mjs),
// then with the whole preload (B). Each variant runs twice, LOW and HIGH calls after the same
// warm-up; (instructions(HIGH) - instructions(LOW)) / (HIGH - LOW) is the cost of one call with
// start-up, warm-up and JIT compilation cancelled out. The difference between consecutive variants
// is what that stage costs per call.
// foreign-*: calls to a host that is not Mistral's (MISTRAL_USAGE_HOSTS unset), A against B only:
// what an app pays for the preload on the rest of its traffic.
//
// Counts are repeatable to about 1 % between identical runs on a quiet machine, but not under heavy
// load: how many event-loop turns a call takes depends on when the server's answer arrives (undici
// JSON, no preload: 0.94 M instructions per call at load 1, 1.02 M at load 18). Run it with the
// machine otherwise idle. Each variant costs two valgrind runs of about 20 s.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    workloads: { type: "string", default: "fetch-json,fetch-sse,undici-json,undici-sse,foreign-fetch,foreign-undici" },
    low: { type: "string", default: "200" },
    high: { type: "string", default: "1200" },
    node: { type: "string", default: process.execPath },
    json: { type: "string" },
  },
});
const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
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
  { id: "B", label: "CSV sink: row, stat, write, tick", variant: "full" },
];

const server = spawn(NODE, [path.join(BENCH, "server.mjs")], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve, reject) => {
  server.stdout.once("data", (data) => resolve(JSON.parse(String(data)).url));
  server.once("exit", () => reject(new Error("bench server exited")));
});
const port = new URL(url).port;
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "mistral-usage-attribution-"));

function instructions(stage, api, mode, calls, foreign) {
  // --single-threaded: no concurrent compilation or GC threads, whose scheduling under valgrind
  // made counts vary by 5 % between identical runs (1 % with it).
  const args = ["--tool=callgrind", "--callgrind-out-file=/dev/null", NODE, "--single-threaded"];
  if (stage.variant === "full") args.push("--import", path.join(ROOT, "register.js"));
  else if (stage.variant !== undefined) args.push("--import", path.join(BENCH, "attribution", "variant.mjs"));
  args.push(path.join(BENCH, "client.mjs"), "--url", url, "--api", api, "--mode", mode, "--calls", String(calls), "--warmup", "100");
  const env = { ...process.env, MISTRAL_USAGE_LOG: path.join(logDir, "usage.csv"), ATTRIBUTION_VARIANT: stage.variant ?? "" };
  if (foreign) delete env.MISTRAL_USAGE_HOSTS;
  else env.MISTRAL_USAGE_HOSTS = `127.0.0.1:${port}`;
  const result = spawnSync("valgrind", args, { env, encoding: "utf8", maxBuffer: 64 << 20 });
  const match = /Collected : (\d+)/.exec(result.stderr);
  if (result.status !== 0 || match === null) throw new Error(`valgrind failed (${stage.id} ${api} ${mode}):\n${result.stderr.slice(-2000)}`);
  return Number(match[1]);
}

const perCall = (stage, api, mode, foreign) =>
  (instructions(stage, api, mode, HIGH, foreign) - instructions(stage, api, mode, LOW, foreign)) / (HIGH - LOW);

const results = [];
try {
  for (const workload of values.workloads.split(",")) {
    const foreign = workload.startsWith("foreign-");
    const [api, mode] = foreign ? [workload.slice("foreign-".length), "json"] : workload.split("-");
    const stages = foreign ? [STAGES[0], STAGES.at(-1)] : STAGES;
    const row = { workload, node: nodeVersion, perCall: {} };
    for (const stage of stages) {
      row.perCall[stage.id] = perCall(stage, api, mode, foreign);
      process.stderr.write(`[attribution] ${nodeVersion} ${workload} ${stage.id}: ${Math.round(row.perCall[stage.id])} instructions per call\n`);
    }
    results.push(row);
  }
} finally {
  server.kill("SIGTERM");
  fs.rmSync(logDir, { recursive: true, force: true });
}

const k = (n) => `${(n / 1000).toFixed(1)}k`;
const pct = (n, of) => `${((100 * n) / of).toFixed(1)} %`;
console.log(`preload cost per call in instructions (callgrind), node ${nodeVersion}, concurrency 1, calls ${LOW}..${HIGH}`);
for (const row of results) {
  const a = row.perCall.A;
  console.log(`\n${row.workload}: A = ${k(a)} instructions per call; B - A = ${k(row.perCall.B - a)} (${pct(row.perCall.B - a, a)} of A)`);
  const ids = Object.keys(row.perCall);
  for (let i = 1; i < ids.length; i++) {
    const stage = STAGES.find((s) => s.id === ids[i]);
    const delta = row.perCall[ids[i]] - row.perCall[ids[i - 1]];
    console.log(`  ${k(delta).padStart(8)}  ${pct(delta, a).padStart(7)}  ${row.workload.startsWith("foreign-") ? "the whole preload, on calls it does not log" : stage.label}`);
  }
}
if (values.json !== undefined) fs.writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
