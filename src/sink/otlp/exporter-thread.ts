/**
 * The exporter thread: the official OpenTelemetry JS SDK (sdk-metrics, the OTLP exporters), in a
 * worker thread of its own. esbuild bundles this file and its packages into dist/otlp-exporter.cjs
 * (about 90 KB instead of hundreds of files: +72 M instructions rather than +667 M at load,
 * otel-export.md 2.2); the preload starts the thread at the first usage event only.
 *
 * Why a thread: OpenTelemetry's exports are asynchronous HTTP, which cannot run in an `exit`
 * handler, so a process.exit() would lose everything since the last export. Here the exiting
 * thread posts "flush" and waits on shared memory (Atomics.wait) while this thread, which has an
 * event loop of its own, does the export. It also keeps the SDK's start-up (bundle evaluation,
 * about 25 ms of CPU) off the app's event loop.
 */
import { parentPort, workerData, type MessagePort } from "node:worker_threads";
import { randomUUID } from "node:crypto";
import { AggregationTemporalityPreference } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPMetricExporter as JsonExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPMetricExporter as ProtoExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { CompressionAlgorithm } from "@opentelemetry/otlp-exporter-base";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from "@opentelemetry/sdk-metrics";
import type { OtlpConfig } from "./config.js";
import { callAttributes, METRIC, TOKEN_USAGE_BUCKETS, type Attributes } from "./instruments.js";
import { SLOT, type FromExporter, type ToExporter, type WireEvent } from "./wire.js";

export interface ExporterThreadData {
  readonly config: OtlpConfig;
  readonly shared: SharedArrayBuffer;
  readonly reports: MessagePort;
}

const { config, shared, reports } = workerData as ExporterThreadData;
const slots = new Int32Array(shared);

const exporterOptions = {
  url: config.url,
  headers: { ...config.headers },
  timeoutMillis: config.timeoutMillis,
  compression: config.compression === "gzip" ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE,
  temporalityPreference: {
    cumulative: AggregationTemporalityPreference.CUMULATIVE,
    delta: AggregationTemporalityPreference.DELTA,
    lowmemory: AggregationTemporalityPreference.LOWMEMORY,
  }[config.temporality],
};
const exporter: PushMetricExporter = config.protocol === "http/json" ? new JsonExporter(exporterOptions) : new ProtoExporter(exporterOptions);

// Export failures are silent in the SDK unless a diag logger is installed (otel-export.md 2.3); the
// app should hear of one, once per outage, not once per attempt.
const exportOnce = exporter.export.bind(exporter);
exporter.export = (metrics, done) => {
  exportOnce(metrics, (result) => {
    if (result.code === 0) Atomics.store(slots, SLOT.failing, 0);
    else if (Atomics.load(slots, SLOT.failing) === 0) {
      // Reported before the flag is set: the exiting thread reads the flag, then drains the reports.
      const reason = result.error?.message ?? "export failed";
      report(
        `cannot export usage metrics to ${config.url} (${reason}); they are retried at each export, and what is not ` +
          `exported when the process ends is missing there. The CSV log has every row.`,
      );
      Atomics.store(slots, SLOT.failing, 1);
    }
    done(result);
  });
};

const reader = new PeriodicExportingMetricReader({
  exporter,
  exportIntervalMillis: config.exportIntervalMillis,
  exportTimeoutMillis: config.exportTimeoutMillis,
});
const provider = new MeterProvider({
  // A random service.instance.id per exporting process: with cumulative temporality, two processes
  // with the same resource would overwrite each other's series (otel-export.md 2.5).
  resource: defaultResource().merge(resourceFromAttributes({ ...config.resourceAttributes, "service.instance.id": randomUUID() })),
  readers: [reader],
});
const meter = provider.getMeter("mistral-usage-log");
const inputTokens = meter.createCounter(METRIC.inputTokens, { unit: "{token}", description: "Input tokens used, as the Mistral API reported them" });
const outputTokens = meter.createCounter(METRIC.outputTokens, { unit: "{token}", description: "Output tokens used, as the Mistral API reported them" });
const tokenUsage = meter.createHistogram(METRIC.tokenUsage, {
  unit: "{token}",
  description: "Number of input and output tokens used",
  advice: { explicitBucketBoundaries: [...TOKEN_USAGE_BUCKETS] },
});

interface PointAttributes {
  readonly counters: Attributes;
  readonly input: Attributes;
  readonly output: Attributes;
}
// Calls repeat the same few models and servers: their attribute sets are built once.
const attributeCache = new Map<string, PointAttributes>();

function record(event: WireEvent): void {
  const key = `${event[0]}\0${event[1]}\0${event[2]}\0${event[3] ?? ""}\0${event[4] ?? "\0"}`;
  let points = attributeCache.get(key);
  if (points === undefined) {
    const attributes = callAttributes(event);
    points = {
      counters: { ...attributes, "gen_ai.token.modality": "unknown" },
      input: { ...attributes, "gen_ai.token.type": "input" },
      output: { ...attributes, "gen_ai.token.type": "output" },
    };
    if (attributeCache.size >= 1000) attributeCache.clear();
    attributeCache.set(key, points);
  }
  const [, , , , , prompt, completion] = event;
  inputTokens.add(prompt, points.counters);
  outputTokens.add(completion, points.counters);
  tokenUsage.record(prompt, points.input);
  tokenUsage.record(completion, points.output);
}

async function flush(seq: number): Promise<void> {
  try {
    await reader.forceFlush();
  } catch {
    // Reported through the exporter wrapper.
  }
  Atomics.store(slots, SLOT.flushed, seq);
  Atomics.notify(slots, SLOT.flushed);
}

function report(message: string): void {
  const payload: FromExporter = { kind: "warning", message };
  reports.postMessage(payload);
}

parentPort?.on("message", (message: ToExporter) => {
  try {
    if (message.kind === "events") for (const event of message.events) record(event);
    else if (message.kind === "flush") void flush(message.seq);
  } catch (error) {
    report(`internal error in the metrics exporter, please report it: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
});
