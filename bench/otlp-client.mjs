// One sample of the metrics-export benchmark part (bench/otlp-part.ts): a plain fetch client, run
// with no preload (A), the preload with the export off (B) or on (E, MISTRAL_USAGE_OTLP=1 and a
// loopback receiver). Prints one JSON line: when the app's first line ran, the first call (which
// starts the exporter thread under E) and the CPU of every thread until 500 ms later, the calls after it (wall and CPU of every thread, so the
// exporter thread's share is in), and when the app's last line ran (the parent takes the exit from there).
//
//   node [--import register.js] bench/otlp-client.mjs --url URL --calls N
import { parseArgs } from "node:util";

const appStartsMs = performance.now();
const { values } = parseArgs({ options: { url: { type: "string" }, calls: { type: "string", default: "200" } } });
const url = `${values.url}/v1/chat/completions`;
const body = JSON.stringify({ model: "mistral-small-latest", messages: [{ role: "user", content: "What is the capital of France?" }], max_tokens: 64 });
const headers = { "content-type": "application/json", authorization: "Bearer bench-not-a-key" };

async function call() {
  const response = await fetch(url, { method: "POST", headers, body });
  const parsed = await response.json();
  if (response.status !== 200 || parsed.usage === undefined) throw new Error(`status ${response.status}`);
}

let t = performance.now();
const firstCpu0 = process.cpuUsage();
await call();
// The first row is handed to the sink on the next tick: a macrotask later, its cost is in.
await new Promise((resolve) => setImmediate(resolve));
const firstCallMs = performance.now() - t;
// Then a pause, in which E's exporter thread starts (its CPU is counted here, not in the calls below).
await new Promise((resolve) => setTimeout(resolve, 500));
const firstCpu = process.cpuUsage(firstCpu0);

const calls = Number(values.calls);
const cpu0 = process.cpuUsage();
t = performance.now();
for (let i = 0; i < calls; i++) await call();
const elapsedMs = performance.now() - t;
const cpu = process.cpuUsage(cpu0);
const endAtMs = performance.now();
process.stdout.write(
  `${JSON.stringify({ appStartsMs, firstCallMs, firstCpuMicros: firstCpu.user + firstCpu.system, perCallMs: elapsedMs / calls, cpuMicrosPerCall: (cpu.user + cpu.system) / calls, peakRssMB: process.resourceUsage().maxRSS / 1024, endAtMs })}\n`,
);
