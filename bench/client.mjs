// One benchmark sample: a plain client making Mistral-shaped chat calls against bench/server.mjs.
// It imports nothing from this package; the variant is chosen by the orchestrator with `--import`
// (none: A, the preload: B, the peer logger: C). Prints one JSON line with what it measured.
//
//   node [--import X] bench/client.mjs --url URL --api fetch|undici --mode json|sse|mixed
//        --concurrency N (--calls N | --duration SECONDS) --warmup N [--memory]
//
// After WARMUP calls (measured apart: their CPU time, JIT compilation included), it makes CALLS calls, or as many as it can start in SECONDS.
// A call is complete when the app has read the whole body (json: parsed; sse: every chunk read).
// Latency is per call, from just before fetch()/request() to the last byte; for streams, also the
// time to the first body chunk. `--memory` takes RSS and heap after a forced GC (needs --expose-gc)
// once the warm-up is done and again after the measured calls.
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    api: { type: "string", default: "fetch" },
    mode: { type: "string", default: "json" },
    concurrency: { type: "string", default: "1" },
    calls: { type: "string" },
    duration: { type: "string" },
    warmup: { type: "string", default: "200" },
    memory: { type: "boolean", default: false },
  },
});
const URL_ = `${values.url}/v1/chat/completions`;
const api = values.api;
const mode = values.mode;
const concurrency = Number(values.concurrency);
const fixedCalls = values.calls === undefined ? undefined : Number(values.calls);
const durationMs = values.duration === undefined ? undefined : Number(values.duration) * 1000;
if ((fixedCalls === undefined) === (durationMs === undefined)) throw new Error("give --calls or --duration");
const warmup = Number(values.warmup);
// Loaded only when used: npm undici installs its own Agent as the global dispatcher when it loads,
// which Node's fetch would then use instead of its bundled one.
const { request } = api === "undici" ? await import("undici") : {};

const headers = {
  "content-type": "application/json",
  accept: "application/json",
  authorization: "Bearer bench-not-a-key",
};
const bodyFor = (stream) =>
  JSON.stringify({
    model: "mistral-small-latest",
    messages: [
      { role: "system", content: "You are a concise assistant." },
      { role: "user", content: "What is the capital of France? Answer in one short sentence." },
    ],
    temperature: 0.2,
    max_tokens: 64,
    stream,
  });
const JSON_BODY = bodyFor(false);
const SSE_BODY = bodyFor(true);

let chunksSeen = 0;

/** Returns [total ms, first-chunk ms or NaN]. */
async function call(stream) {
  const start = performance.now();
  let first = NaN;
  const body = stream ? SSE_BODY : JSON_BODY;
  const response =
    api === "fetch" ? await fetch(URL_, { method: "POST", headers, body }) : await request(URL_, { method: "POST", headers, body });
  const status = api === "fetch" ? response.status : response.statusCode;
  if (status !== 200) throw new Error(`status ${status}`);
  if (stream) {
    for await (const chunk of response.body) {
      if (Number.isNaN(first)) first = performance.now() - start;
      chunksSeen++;
      void chunk;
    }
  } else {
    const parsed = api === "fetch" ? await response.json() : await response.body.json();
    if (parsed.usage === undefined) throw new Error("no usage");
  }
  return [performance.now() - start, first];
}

/** Makes `total` calls, or starts calls until `deadline` (performance.now()); returns how many. */
async function run(total, deadline, latencies, firsts) {
  let issued = 0;
  const more = () => (deadline === undefined ? issued < total : performance.now() < deadline);
  const worker = async () => {
    while (more()) {
      const n = issued++;
      const stream = mode === "sse" || (mode === "mixed" && n % 2 === 1);
      const [ms, first] = await call(stream);
      if (latencies !== undefined) {
        latencies.push(ms);
        if (!Number.isNaN(first)) firsts.push(first);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return issued;
}

function memory() {
  globalThis.gc?.();
  globalThis.gc?.();
  const usage = process.memoryUsage();
  return { rssMB: usage.rss / 2 ** 20, heapUsedMB: usage.heapUsed / 2 ** 20 };
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

const warmupCpu0 = process.cpuUsage();
await run(warmup);
const warmupCpu = process.cpuUsage(warmupCpu0);
const before = values.memory ? memory() : undefined;
const latencies = [];
const firsts = [];
chunksSeen = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const calls = await run(fixedCalls, durationMs === undefined ? undefined : t0 + durationMs, latencies, firsts);
const elapsedMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const after = values.memory ? memory() : undefined;

const sorted = Float64Array.from(latencies).sort();
const sortedFirst = Float64Array.from(firsts).sort();
const result = {
  calls,
  warmup,
  elapsedMs,
  callsPerSec: (calls * 1000) / elapsedMs,
  p50Ms: quantile(sorted, 0.5),
  p99Ms: quantile(sorted, 0.99),
  firstChunkP50Ms: quantile(sortedFirst, 0.5),
  firstChunkP99Ms: quantile(sortedFirst, 0.99),
  chunksPerStream: mode === "json" ? 0 : chunksSeen / (mode === "mixed" ? calls / 2 : calls),
  cpuMicrosPerCall: (cpu.user + cpu.system) / calls,
  // The warm-up calls are when V8 compiles the hot code (on its own threads, counted here).
  warmupCpuMicrosPerCall: warmup > 0 ? (warmupCpu.user + warmupCpu.system) / warmup : null,
  peakRssMB: process.resourceUsage().maxRSS / 1024,
  ...(before !== undefined && after !== undefined
    ? { rssAfterWarmupMB: before.rssMB, rssAfterCallsMB: after.rssMB, heapAfterWarmupMB: before.heapUsedMB, heapAfterCallsMB: after.heapUsedMB }
    : {}),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
