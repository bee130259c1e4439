// One step of the preload, for the instruction-count attribution (bench/attribution.mjs). Loaded
// with `--import`; ATTRIBUTION_VARIANT says how much of the preload runs:
//
//   channels   no-op subscribers on every channel the taps subscribe to: what undici and node:http
//              pay to build and publish their messages once anyone listens
//   match      the real taps, with an observe() that decides (matchCall) and then declines
//   forward    the real taps, with a no-op observer for matched calls: per-request wrapping and
//              every body chunk handed over, nothing decoded or parsed
//   extract    the real pipeline (decode, extract, one event per call) into a sink that drops it
//   format     the same into a sink that formats each batch of rows as the CSV log does, on the
//              same next-tick batching, and drops the text
//   write      ...and writes it with one synchronous write to a file opened once (O_APPEND): the
//              CSV sink without the stat of the path that follows a rotated or deleted log
//
// The full preload (register.js) adds the CSV sink on top: the write plus that stat. Each variant is the previous one plus
// one stage, so differences of instruction counts attribute the cost to the stages.
import diagnostics from "node:diagnostics_channel";
import fs from "node:fs";

const dist = process.env.ATTRIBUTION_DIST ?? new URL("../../dist/", import.meta.url).href;
const load = (file) => import(new URL(file, dist.endsWith("/") ? dist : `${dist}/`).href);
const variant = process.env.ATTRIBUTION_VARIANT;
const extraHosts = (process.env.MISTRAL_USAGE_HOSTS ?? "").split(",").filter(Boolean);
const onInternalError = (error) => process.stderr.write(`attribution variant: ${error?.stack ?? error}\n`);

const CHANNELS = [
  "undici:request:create",
  "undici:request:headers",
  "undici:request:bodyChunkReceived",
  "undici:request:trailers",
  "undici:request:error",
  "http.client.request.created",
  "http.client.request.start",
  "http.client.response.finish",
  "http.client.request.error",
];

const NOOP_OBSERVER = {
  wantsRequestBody: false,
  requestBody() {},
  responseStart() {},
  responseData() {},
  responseEnd() {},
  responseError() {},
};
const NOOP_SINK = { append() {}, flush() {}, close() {} };

if (variant === "channels") {
  const noop = () => {};
  for (const name of CHANNELS) diagnostics.subscribe(name, noop);
} else if (variant === "match" || variant === "forward") {
  const { TAPS } = await load("src/taps/index.js");
  const { HostMatcher, matchCall } = await load("src/endpoints.js");
  const hosts = new HostMatcher(extraHosts);
  const observe =
    variant === "match"
      ? (origin, path, method) => {
          matchCall(hosts, origin, path, method);
          return undefined;
        }
      : (origin, path, method) => (matchCall(hosts, origin, path, method) === undefined ? undefined : NOOP_OBSERVER);
  for (const tap of TAPS) tap(observe, onInternalError);
} else if (variant === "extract" || variant === "format" || variant === "write") {
  const { TAPS } = await load("src/taps/index.js");
  const { createPipeline } = await load("src/pipeline.js");
  const sink = variant === "extract" ? NOOP_SINK : await batchingSink(variant === "write");
  const pipeline = createPipeline({ sinks: [sink], extraHosts, warn: (message) => process.stderr.write(`${message}\n`) });
  for (const tap of TAPS) tap(pipeline.observe, onInternalError);
} else {
  throw new Error(`ATTRIBUTION_VARIANT must be channels, match, forward, extract, format or write, not ${variant}`);
}

/** CsvLog's batching (rows of one tick, written on the next) and formatting, with or without the write. */
async function batchingSink(write) {
  const { formatRows } = await load("src/log/format.js");
  const fd = write ? fs.openSync(process.env.MISTRAL_USAGE_LOG, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT) : -1;
  let pending = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const text = formatRows(pending);
    pending = [];
    if (write) fs.writeSync(fd, text);
  };
  return {
    append(event) {
      pending.push(event);
      if (!scheduled) {
        scheduled = true;
        process.nextTick(flush);
      }
    },
    flush,
    close: flush,
  };
}
