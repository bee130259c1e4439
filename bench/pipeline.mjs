// The preload's own cost per call, without a network: what the taps, the observer, the extractors
// and the sink add to one call, measured on the built code (dist/) in one process.
//
//   node bench/pipeline.mjs [--quick] [--json] [--dist DIR]
//
// --dist measures another build (say a copy of dist/ with a fix) against the same bodies.
// "through the taps" feeds the real, installed subscribers the diagnostics messages undici would
// publish for one call (create, headers, body chunks, trailers), then yields a macrotask so that the
// row is flushed on its own, as it is for a real call; the same loop without the preload installed
// is subtracted. The body chunks go through the wrapped `onData` (Node 20 and 22, undici 6) or the
// `undici:request:bodyChunkReceived` channel (Node 24+, undici >= 7.11). The rest times one part
// each. Times are CPU time (user + system, all threads: GC included), which a busy shared machine
// disturbs less than wall time. Medians of 7 repetitions (5 with --quick), microseconds per call.
import diagnostics from "node:diagnostics_channel";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { jsonBody, sseEvents } from "./bodies.mjs";

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, json: { type: "boolean", default: false }, dist: { type: "string" } },
});
const dist = values.dist === undefined ? new URL("../dist/", import.meta.url) : pathToFileURL(`${path.resolve(values.dist)}/`);
const load = (file) => import(new URL(file, dist).href);
// A build from before the pipeline seams (--dist of an older checkout) keeps its modules elsewhere.
const layout = fs.existsSync(new URL("src/pipeline.js", dist))
  ? { json: "src/extract/json.js", sse: "src/extract/sse.js", format: "src/log/format.js", seams: true }
  : { json: "src/usage/json.js", sse: "src/usage/sse.js", format: "src/sink/csv-row.js", seams: false };
const { install } = await load("src/index.js");
const { HostMatcher, matchRequest } = await load("src/endpoints.js");
const { ObservedCall } = await load("src/record/observed-call.js");
const { extractFromJson } = await load(layout.json);
const { SseUsageExtractor } = await load(layout.sse);
const { formatRows } = await load(layout.format);
const { CsvLog } = await load("src/sink/csv-file.js");
const SCALE = values.quick ? 0.1 : 1;
const REPS = values.quick ? 5 : 7;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mistral-usage-pipeline-"));
const ORIGIN = "http://127.0.0.1:8080";
const PATH = "/v1/chat/completions";
const JSON_BODY = jsonBody();
const SSE = sseEvents();
const SSE_WHOLE = Buffer.concat(SSE);
// The stream as 4 reads, as a busy client often gets it.
const SSE_4 = [0, 1, 2, 3].map((i) => SSE_WHOLE.subarray(Math.floor((i * SSE_WHOLE.length) / 4), Math.floor(((i + 1) * SSE_WHOLE.length) / 4)));
const rawHeaders = (type, encoding) => [
  Buffer.from("content-type"), Buffer.from(type), Buffer.from("date"), Buffer.from("Tue, 24 Nov 2026 10:00:00 GMT"), Buffer.from("connection"), Buffer.from("keep-alive"), Buffer.from("transfer-encoding"), Buffer.from("chunked"),
  ...(encoding === undefined ? [] : [Buffer.from("content-encoding"), Buffer.from(encoding)]),
];
const JSON_HEADERS = rawHeaders("application/json");
const SSE_HEADERS = rawHeaders("text/event-stream");
const GZIP_SSE_HEADERS = rawHeaders("text/event-stream", "gzip");
const BR_SSE_HEADERS = rawHeaders("text/event-stream", "br");

/** The stream as a compressing server sends it: one compressor, flushed after each event. */
async function compressedPerEvent(compressor, flushKind) {
  const out = [];
  let pending = [];
  compressor.on("data", (chunk) => pending.push(chunk));
  for (const event of SSE) {
    compressor.write(event);
    await new Promise((resolve) => (flushKind === undefined ? compressor.flush(resolve) : compressor.flush(flushKind, resolve)));
    await new Promise((resolve) => setImmediate(resolve));
    out.push(Buffer.concat(pending));
    pending = [];
  }
  await new Promise((resolve) => compressor.end(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  if (pending.length > 0) out.push(Buffer.concat(pending));
  return out;
}
const GZIP_SSE = await compressedPerEvent(zlib.createGzip(), zlib.constants.Z_SYNC_FLUSH);
const BR_SSE = await compressedPerEvent(zlib.createBrotliCompress());

const channel = (name) => diagnostics.channel(`undici:request:${name}`);
const create = channel("create");
const headers = channel("headers");
const chunkReceived = channel("bodyChunkReceived");
const trailers = channel("trailers");

/** What the preload sees of an undici Request (undici 6: Node 20 and 22). */
class RequestV6 {
  constructor() {
    this.origin = ORIGIN;
    this.path = PATH;
    this.method = "POST";
  }
  onData(chunk) {
    return chunk !== undefined;
  }
  onBodySent() {}
}

/** Undici >= 7.11 publishes each chunk from onData. A class of its own, as each copy of undici has. */
class RequestV7 extends RequestV6 {
  onData(chunk) {
    if (chunkReceived.hasSubscribers) chunkReceived.publish({ request: this, chunk });
    return chunk !== undefined;
  }
}

/** One call as undici reports it: through the onData wrapper, or through the body channel. */
function oneCall(chunks, head, via) {
  const request = via === "channel" ? new RequestV7() : new RequestV6();
  if (create.hasSubscribers) create.publish({ request });
  if (headers.hasSubscribers) headers.publish({ request, response: { statusCode: 200, headers: head, statusText: "OK" } });
  for (const chunk of chunks) request.onData(chunk);
  if (trailers.hasSubscribers) trailers.publish({ request, trailers: [] });
}

const nextMacrotask = () => new Promise((resolve) => setImmediate(resolve));

const cpuMicros = (since) => {
  const used = process.cpuUsage(since);
  return used.user + used.system;
};

async function timeAsync(iterations, body) {
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) await body(i);
  return cpuMicros(start) / iterations;
}

function timeSync(iterations, body) {
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) body(i);
  return cpuMicros(start) / iterations;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const results = [];

let logCounter = 0;

async function tapped(name, chunks, head, via) {
  const iterations = Math.round(4000 * SCALE);
  const run = () => timeAsync(iterations, async () => {
    oneCall(chunks, head, via);
    await nextMacrotask();
  });
  const logPath = path.join(dir, `tapped-${++logCounter}.csv`);
  const without = [];
  const withPreload = [];
  await run(); // warm-up
  for (let r = 0; r < REPS; r++) {
    without.push(await run());
    const uninstall = install({ logPath, extraHosts: ["127.0.0.1:8080"], verbose: false, disabled: false });
    if (r === 0) await run();
    withPreload.push(await run());
    uninstall();
  }
  const rows = fs.readFileSync(logPath, "utf8").split("\n").length - 2;
  const expected = iterations * (REPS + 1);
  if (rows !== expected) throw new Error(`${name}: ${rows} rows, expected ${expected}`);
  results.push({ part: name, microsPerCall: median(withPreload) - median(without), baselineMicros: median(without) });
}

function part(name, iterations, body) {
  const n = Math.round(iterations * SCALE);
  timeSync(n, body);
  const times = [];
  for (let r = 0; r < REPS; r++) times.push(timeSync(n, body));
  results.push({ part: name, microsPerCall: median(times) });
}

// ---- through the taps, end to end (this includes the CSV write of each row)
await tapped("warm-up: the first measurement pays for compiling the preload's code", [JSON_BODY], JSON_HEADERS, "onData");
results.pop();
await tapped("json call through the taps, onData wrapper (Node 20/22)", [JSON_BODY], JSON_HEADERS, "onData");
await tapped("json call through the taps, body channel (Node 24+)", [JSON_BODY], JSON_HEADERS, "channel");
await tapped("sse call (51 events in 51 reads) through the taps, onData wrapper", SSE, SSE_HEADERS, "onData");
await tapped("sse call (51 events in 4 reads) through the taps, onData wrapper", SSE_4, SSE_HEADERS, "onData");
await tapped("gzip sse call (51 events, each flushed: 52 reads) through the taps, onData wrapper", GZIP_SSE, GZIP_SSE_HEADERS, "onData");
await tapped("br sse call (51 events, each flushed: 52 reads) through the taps, onData wrapper", BR_SSE, BR_SSE_HEADERS, "onData");

// ---- the parts
const hosts = new HostMatcher(["127.0.0.1:8080"]);
part("matchRequest (host and path cached)", 200_000, () => matchRequest(hosts, ORIGIN, PATH, "POST"));
const deps = { record: () => {}, warn: () => {}, limits: { maxBodyBytes: 32 << 20, maxEventBytes: 8 << 20, maxRequestBytes: 1 << 20 }, openStreams: new Set() };
const chat = { kind: "chat", usageExpected: true, needsRequestModel: false };
const endpoint = layout.seams ? { endpoint: chat, server: { address: "127.0.0.1", port: 8080 } } : chat;
const jsonHead = { status: 200, contentType: "application/json", contentEncoding: undefined };
const sseHead = { status: 200, contentType: "text/event-stream", contentEncoding: undefined };
part("ObservedCall, json body, record() a no-op", 50_000, () => {
  const call = new ObservedCall(endpoint, () => "label", deps);
  call.responseStart(jsonHead);
  call.responseData(JSON_BODY);
  call.responseEnd();
});
part("  of which: body.toString + JSON.parse + usage checks (extractFromJson)", 50_000, () => extractFromJson(JSON_BODY.toString("utf8")));
part("  of which: JSON.parse alone", 50_000, () => JSON.parse(JSON_BODY.toString("latin1")));
// An embeddings response of 32 inputs of 1,024 dimensions (about 400 KB), in 64 KiB reads, as
// Mistral serializes it (data, then model and usage): the preload reads it from its end.
const EMBEDDINGS_BODY = Buffer.from(
  JSON.stringify({
    id: "embd-bench",
    object: "list",
    data: Array.from({ length: 32 }, (_, index) => ({
      object: "embedding",
      embedding: Array.from({ length: 1024 }, (_, j) => Math.round(Math.sin(index * 1024 + j) * 1e8) / 1e9),
      index,
    })),
    model: "mistral-embed",
    usage: { prompt_tokens: 300, total_tokens: 300, completion_tokens: 0 },
  }),
);
const EMBEDDINGS_READS = Array.from({ length: Math.ceil(EMBEDDINGS_BODY.length / 65536) }, (_, i) => EMBEDDINGS_BODY.subarray(i * 65536, (i + 1) * 65536));
part(`ObservedCall, embeddings json body of ${EMBEDDINGS_BODY.length} bytes in ${EMBEDDINGS_READS.length} reads, record() a no-op`, 500, () => {
  const call = new ObservedCall({ ...endpoint, ...(layout.seams ? {} : { kind: "embeddings" }) }, () => "label", deps);
  call.responseStart(jsonHead);
  for (const chunk of EMBEDDINGS_READS) call.responseData(chunk);
  call.responseEnd();
});
part("  for comparison: the app's own toString + JSON.parse of that body", 100, () => JSON.parse(EMBEDDINGS_BODY.toString("utf8")));
part("ObservedCall, sse 51 events in 51 reads, record() a no-op", 5_000, () => {
  const call = new ObservedCall(endpoint, () => "label", deps);
  call.responseStart(sseHead);
  for (const chunk of SSE) call.responseData(chunk);
  call.responseEnd();
});
part("  of which: SseUsageExtractor alone (decode, eventsource-parser, JSON.parse of the usage event)", 5_000, () => {
  const sse = new SseUsageExtractor(8 << 20);
  for (const chunk of SSE) sse.push(chunk);
});
part("ObservedCall, sse 51 events in 4 reads, record() a no-op", 5_000, () => {
  const call = new ObservedCall(endpoint, () => "label", deps);
  call.responseStart(sseHead);
  for (const chunk of SSE_4) call.responseData(chunk);
  call.responseEnd();
});
for (const [name, chunks, encoding] of [["gzip", GZIP_SSE, "gzip"], ["br", BR_SSE, "br"]]) {
  const head = { status: 200, contentType: "text/event-stream", contentEncoding: encoding };
  part(`ObservedCall, ${name} sse 51 events in ${chunks.length} reads, record() a no-op`, 2_000, () => {
    const call = new ObservedCall(endpoint, () => "label", deps);
    call.responseStart(head);
    for (const chunk of chunks) call.responseData(chunk);
    call.responseEnd();
  });
  const perCall = results.at(-1).microsPerCall;
  results.push({ part: `  per compressed chunk (the line above / ${chunks.length})`, microsPerCall: perCall / chunks.length });
}
if (fs.existsSync(new URL("src/decode/stream-decoder.js", dist))) {
  const { createStreamDecoder } = await load("src/decode/stream-decoder.js");
  part("  of which: createStreamDecoder(gzip) + 52 pushes + end, alone", 2_000, () => {
    const decoder = createStreamDecoder(["gzip"], 32 << 20);
    for (const chunk of GZIP_SSE) decoder.push(chunk);
    decoder.end();
  });
  part("  of which: createStreamDecoder(gzip) + end, alone (the per-stream set-up)", 2_000, () => createStreamDecoder(["gzip"], 32 << 20).end());
}
const counts = { promptTokens: 23, completionTokens: 50, totalTokens: 73 };
const row = layout.seams
  ? { epochMicros: Date.now() * 1000, endpoint: "chat", server: { address: "127.0.0.1", port: 8080 }, requestModel: undefined, responseModel: "mistral-small-2603", counts }
  : { model: "mistral-small-2603", counts, epochMicros: Date.now() * 1000 };
part("formatRows, one row (csv-writer stringifier + timestamp)", 100_000, () => formatRows([row]));
const logPath = path.join(dir, "sink.csv");
const log = new CsvLog(logPath, { warn: (message) => console.error(message) });
part("CsvLog append + flush of one row (statSync + writeSync + format)", 20_000, () => {
  log.append(row);
  log.flush();
});
log.close();
const statPath = path.join(dir, "stat.csv");
fs.writeFileSync(statPath, "x\n");
const fd = fs.openSync(statPath, fs.constants.O_WRONLY | fs.constants.O_APPEND);
const line = Buffer.from("2026-11-24T10:30:01.123456+00:00,mistral-small-2603,23,50,73\n");
part("  of which: fs.statSync(path) alone", 20_000, () => fs.statSync(statPath, { throwIfNoEntry: false }));
part("  of which: fs.writeSync of one row alone", 20_000, () => fs.writeSync(fd, line));
part("  fs.fstatSync(fd) alone, for comparison", 20_000, () => fs.fstatSync(fd));
fs.closeSync(fd);
fs.rmSync(dir, { recursive: true, force: true });

if (values.json) {
  process.stdout.write(`${JSON.stringify({ node: process.version, dist: fileURLToPath(dist), results })}\n`);
} else {
  console.log(`preload cost per call, node ${process.version}, ${fileURLToPath(dist)} (CPU microseconds, median of ${REPS})`);
  for (const r of results) console.log(`${r.microsPerCall.toFixed(2).padStart(9)}  ${r.part}`);
}
