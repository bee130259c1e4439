// The peer a user would pick to observe fetch (E): OpenTelemetry's own undici instrumentation, the
// standard way, loaded the same way as ours: `node --import bench/peers/otel-undici.mjs app.js`.
// A tracer provider with a span processor whose exporter drops everything, so what is measured is
// what the instrumentation costs the app, not an export. It observes every request (Mistral or not)
// through undici's diagnostics channels, like the preload, and makes a span of each; it reads no
// body, so it could not log usage: it is the floor of "observing fetch the standard way".
import { context, trace } from "@opentelemetry/api";
import { registerInstrumentations } from "@opentelemetry/instrumentation";
import { UndiciInstrumentation } from "@opentelemetry/instrumentation-undici";
import { NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";

const dropAll = {
  export(_spans, resultCallback) {
    resultCallback({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(dropAll)] });
provider.register();
registerInstrumentations({ tracerProvider: provider, instrumentations: [new UndiciInstrumentation()] });
// Kept referenced for a reader of this file: the API the instrumentation uses.
void context;
void trace;
