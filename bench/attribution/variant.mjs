// One step of the preload, for the instruction-count attribution (bench/attribution.mjs). Loaded
// with `--import`; ATTRIBUTION_VARIANT says how much of the preload runs:
//
//   channels   no-op subscribers on every channel the taps subscribe to: what undici and node:http
//              pay to build and publish their messages once anyone listens
//   match      the real taps, with an observe() that decides (matchCall) and then declines
//   forward    the real taps, with a no-op observer for matched calls: per-request wrapping and
//              every body chunk handed over, nothing decoded or parsed
//   extract    the real pipeline (decode, extract, one event per call) into a sink that drops it
//
// The full preload (register.js) adds the CSV sink on top. Each variant is the previous one plus
// one stage, so differences of instruction counts attribute the cost to the stages.
import diagnostics from "node:diagnostics_channel";

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
} else if (variant === "extract") {
  const { TAPS } = await load("src/taps/index.js");
  const { createPipeline } = await load("src/pipeline.js");
  const pipeline = createPipeline({ sinks: [NOOP_SINK], extraHosts, warn: (message) => process.stderr.write(`${message}\n`) });
  for (const tap of TAPS) tap(pipeline.observe, onInternalError);
} else {
  throw new Error(`ATTRIBUTION_VARIANT must be channels, match, forward or extract, not ${variant}`);
}
