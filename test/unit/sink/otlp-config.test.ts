import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { OTLP_DEFAULTS, otlpConfigFromEnv } from "../../../src/sink/otlp/config.js";

const ON = { MISTRAL_USAGE_OTLP: "1" };

describe("otlpConfigFromEnv", () => {
  test("off unless MISTRAL_USAGE_OTLP is 1; the app's own OTEL_* variables are then not even read", () => {
    assert.deepEqual(otlpConfigFromEnv({}), { config: undefined, warnings: [] });
    assert.deepEqual(otlpConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_METRIC_EXPORT_INTERVAL: "soon" }), {
      config: undefined,
      warnings: [],
    });
    for (const value of ["0", "false", "off", ""]) assert.equal(otlpConfigFromEnv({ MISTRAL_USAGE_OTLP: value }).config, undefined);
    for (const value of ["1", "true", "YES", " on "]) assert.notEqual(otlpConfigFromEnv({ MISTRAL_USAGE_OTLP: value }).config, undefined);
  });

  test("a bad MISTRAL_USAGE_OTLP: one warning, off", () => {
    assert.deepEqual(otlpConfigFromEnv({ MISTRAL_USAGE_OTLP: "maybe" }), {
      config: undefined,
      warnings: ['MISTRAL_USAGE_OTLP="maybe" is not 1 or 0; using 0 (no metrics export)'],
    });
  });

  test("OTEL_SDK_DISABLED=true wins (case-insensitive); other values do not disable", () => {
    assert.equal(otlpConfigFromEnv({ ...ON, OTEL_SDK_DISABLED: "TRUE" }).config, undefined);
    assert.notEqual(otlpConfigFromEnv({ ...ON, OTEL_SDK_DISABLED: "false" }).config, undefined);
    assert.notEqual(otlpConfigFromEnv({ ...ON, OTEL_SDK_DISABLED: "1" }).config, undefined);
  });

  test("the specification's defaults", () => {
    assert.deepEqual(otlpConfigFromEnv(ON), {
      config: {
        url: "http://localhost:4318/v1/metrics",
        protocol: "http/protobuf",
        headers: {},
        timeoutMillis: 10_000,
        compression: "none",
        temporality: "cumulative",
        exportIntervalMillis: 60_000,
        exportTimeoutMillis: 30_000,
        resourceAttributes: { "service.name": OTLP_DEFAULTS.serviceName },
      },
      warnings: [],
    });
  });

  describe("endpoint", () => {
    const url = (env: Record<string, string>) => otlpConfigFromEnv({ ...ON, ...env }).config?.url;
    test("the base endpoint gets /v1/metrics after one slash", () => {
      assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://vm:8428/opentelemetry" }), "http://vm:8428/opentelemetry/v1/metrics");
      assert.equal(url({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://otlp.example.com/" }), "https://otlp.example.com/v1/metrics");
    });
    test("the metrics endpoint is used as is and wins", () => {
      assert.equal(
        url({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "http://b:9090/api/v1/otlp/v1/metrics" }),
        "http://b:9090/api/v1/otlp/v1/metrics",
      );
    });
    test("not an http(s) URL: one warning, the next choice", () => {
      const result = otlpConfigFromEnv({ ...ON, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: "collector:4318", OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://x" });
      assert.equal(result.config?.url, "http://localhost:4318/v1/metrics");
      assert.equal(result.warnings.length, 2);
      assert.match(result.warnings[0]!, /OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="collector:4318" is not an http\(s\) URL/);
    });
  });

  test("headers: general then metrics-specific, percent-decoded; a bad entry is skipped without showing its value", () => {
    const result = otlpConfigFromEnv({
      ...ON,
      OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer%20general,x-team=search",
      OTEL_EXPORTER_OTLP_METRICS_HEADERS: "authorization=Bearer%20metrics,secret-without-equals, bad header=1",
    });
    assert.deepEqual(result.config?.headers, { authorization: "Bearer metrics", "x-team": "search" });
    assert.equal(result.warnings.length, 2);
    for (const warning of result.warnings) assert.doesNotMatch(warning, /secret|Bearer/);
  });

  test("timeouts, compression, protocol, temporality: signal-specific first, case-insensitive; bad values warn and use the default", () => {
    const good = otlpConfigFromEnv({
      ...ON,
      OTEL_EXPORTER_OTLP_TIMEOUT: "5000",
      OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: "2500",
      OTEL_EXPORTER_OTLP_COMPRESSION: "GZIP",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "Delta",
      OTEL_METRIC_EXPORT_INTERVAL: "5000",
      OTEL_METRIC_EXPORT_TIMEOUT: "9000",
    });
    assert.deepEqual(good.warnings, []);
    assert.equal(good.config?.timeoutMillis, 2500);
    assert.equal(good.config?.compression, "gzip");
    assert.equal(good.config?.protocol, "http/json");
    assert.equal(good.config?.temporality, "delta");
    assert.equal(good.config?.exportIntervalMillis, 5000);
    assert.equal(good.config?.exportTimeoutMillis, 5000, "the export timeout is at most the interval");

    const bad = otlpConfigFromEnv({
      ...ON,
      OTEL_EXPORTER_OTLP_TIMEOUT: "-1",
      OTEL_EXPORTER_OTLP_COMPRESSION: "br",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: "sometimes",
      OTEL_METRIC_EXPORT_INTERVAL: "0",
      OTEL_METRIC_EXPORT_TIMEOUT: "1.5",
    });
    assert.deepEqual(bad.config, otlpConfigFromEnv(ON).config);
    assert.deepEqual(bad.warnings, [
      'OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not supported (expected http/protobuf or http/json); using http/protobuf',
      'OTEL_EXPORTER_OTLP_TIMEOUT="-1" is not a whole number of milliseconds; using 10000',
      'OTEL_EXPORTER_OTLP_COMPRESSION="br" is not supported (expected gzip or none); using none',
      'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="sometimes" is not supported (expected cumulative or delta or lowmemory); using cumulative',
      'OTEL_METRIC_EXPORT_INTERVAL="0" is not a whole number of milliseconds >= 1; using 60000',
      'OTEL_METRIC_EXPORT_TIMEOUT="1.5" is not a whole number of milliseconds >= 1; using 30000',
    ]);
  });

  test("resource: OTEL_RESOURCE_ATTRIBUTES decoded, OTEL_SERVICE_NAME over its service.name", () => {
    const result = otlpConfigFromEnv({
      ...ON,
      OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attributes,deployment.environment.name=staging,team=a%2Cb,broken",
      OTEL_SERVICE_NAME: "billing-api",
    });
    assert.deepEqual(result.config?.resourceAttributes, { "service.name": "billing-api", "deployment.environment.name": "staging", team: "a,b" });
    assert.deepEqual(result.warnings, ['OTEL_RESOURCE_ATTRIBUTES: ignoring "broken" (expected key=value, percent-encoded)']);
    assert.equal(otlpConfigFromEnv({ ...ON, OTEL_RESOURCE_ATTRIBUTES: "service.name=svc" }).config?.resourceAttributes["service.name"], "svc");
  });
});
