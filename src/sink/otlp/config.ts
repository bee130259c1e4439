/**
 * The OpenTelemetry metrics export's configuration, read from the standard OTEL_* variables.
 * Pure: no I/O, never throws. Part of the preload bundle, so it stays small.
 *
 * Off unless MISTRAL_USAGE_OTLP=1: an app that sets OTEL_EXPORTER_OTLP_ENDPOINT for its own traces
 * must not start exporting our metrics by surprise. OTEL_SDK_DISABLED=true wins over it. While the
 * export is off, the OTEL_* variables are not even read (they belong to the app).
 */

import { parseFlag } from "../../config.js";

export type OtlpProtocol = "http/protobuf" | "http/json";
export type Temporality = "cumulative" | "delta" | "lowmemory";

export interface OtlpConfig {
  /** Where metrics are POSTed: the metrics endpoint as given, or the base endpoint + `/v1/metrics`. */
  readonly url: string;
  readonly protocol: OtlpProtocol;
  /** OTEL_EXPORTER_OTLP_HEADERS, then OTEL_EXPORTER_OTLP_METRICS_HEADERS over it. Never printed. */
  readonly headers: Readonly<Record<string, string>>;
  /** Per export request, retries included (the OTLP exporter's own deadline). */
  readonly timeoutMillis: number;
  readonly compression: "gzip" | "none";
  readonly temporality: Temporality;
  /** OTEL_METRIC_EXPORT_INTERVAL: how often a running process exports. */
  readonly exportIntervalMillis: number;
  /** OTEL_METRIC_EXPORT_TIMEOUT, at most the interval (the SDK refuses more). */
  readonly exportTimeoutMillis: number;
  /** OTEL_RESOURCE_ATTRIBUTES, with OTEL_SERVICE_NAME as `service.name` over it. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
}

export const OTLP_ENV = {
  enable: "MISTRAL_USAGE_OTLP",
  sdkDisabled: "OTEL_SDK_DISABLED",
  endpoint: "OTEL_EXPORTER_OTLP_ENDPOINT",
  metricsEndpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
  headers: "OTEL_EXPORTER_OTLP_HEADERS",
  metricsHeaders: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
  timeout: "OTEL_EXPORTER_OTLP_TIMEOUT",
  metricsTimeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
  compression: "OTEL_EXPORTER_OTLP_COMPRESSION",
  metricsCompression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
  protocol: "OTEL_EXPORTER_OTLP_PROTOCOL",
  metricsProtocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
  temporality: "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
  interval: "OTEL_METRIC_EXPORT_INTERVAL",
  exportTimeout: "OTEL_METRIC_EXPORT_TIMEOUT",
  serviceName: "OTEL_SERVICE_NAME",
  resourceAttributes: "OTEL_RESOURCE_ATTRIBUTES",
} as const;

/** The OTLP specification's defaults (opentelemetry-specification, protocol/exporter.md and sdk-environment-variables.md). */
export const OTLP_DEFAULTS = {
  endpoint: "http://localhost:4318",
  timeoutMillis: 10_000,
  exportIntervalMillis: 60_000,
  exportTimeoutMillis: 30_000,
  serviceName: "unknown_service:node",
} as const;

type Env = Readonly<Record<string, string | undefined>>;

/** The export's configuration, or `config: undefined` when it is off; `warnings` name each bad value and the default used. */
export function otlpConfigFromEnv(env: Env): { config: OtlpConfig | undefined; warnings: string[] } {
  const warnings: string[] = [];
  if (!enabled(env, warnings)) return { config: undefined, warnings };

  const url = metricsUrl(env, warnings);
  const protocol = oneOf(env, [OTLP_ENV.metricsProtocol, OTLP_ENV.protocol], ["http/protobuf", "http/json"], "http/protobuf", warnings);
  const headers = { ...parseHeaders(env, OTLP_ENV.headers, warnings), ...parseHeaders(env, OTLP_ENV.metricsHeaders, warnings) };
  const timeoutMillis = milliseconds(env, [OTLP_ENV.metricsTimeout, OTLP_ENV.timeout], OTLP_DEFAULTS.timeoutMillis, warnings);
  const compression = oneOf(env, [OTLP_ENV.metricsCompression, OTLP_ENV.compression], ["gzip", "none"], "none", warnings);
  const temporality = oneOf(env, [OTLP_ENV.temporality], ["cumulative", "delta", "lowmemory"], "cumulative", warnings);
  const exportIntervalMillis = milliseconds(env, [OTLP_ENV.interval], OTLP_DEFAULTS.exportIntervalMillis, warnings, 1);
  const exportTimeoutMillis = Math.min(
    milliseconds(env, [OTLP_ENV.exportTimeout], OTLP_DEFAULTS.exportTimeoutMillis, warnings, 1),
    exportIntervalMillis,
  );
  const resourceAttributes = parseResourceAttributes(env, warnings);

  return {
    config: { url, protocol, headers, timeoutMillis, compression, temporality, exportIntervalMillis, exportTimeoutMillis, resourceAttributes },
    warnings,
  };
}

function enabled(env: Env, warnings: string[]): boolean {
  // The specification: only a case-insensitive "true" disables the SDK.
  if (env[OTLP_ENV.sdkDisabled]?.trim().toLowerCase() === "true") return false;
  return parseFlag(env, OTLP_ENV.enable, warnings, " (no metrics export)");
}

function metricsUrl(env: Env, warnings: string[]): string {
  const signal = env[OTLP_ENV.metricsEndpoint]?.trim();
  if (signal !== undefined && signal !== "") {
    if (isHttpUrl(signal)) return signal; // used as is: the specification appends nothing to it
    warnings.push(`${OTLP_ENV.metricsEndpoint}="${signal}" is not an http(s) URL; using ${OTLP_ENV.endpoint} or its default`);
  }
  const base = env[OTLP_ENV.endpoint]?.trim();
  if (base !== undefined && base !== "") {
    if (isHttpUrl(base)) return withMetricsPath(base);
    warnings.push(`${OTLP_ENV.endpoint}="${base}" is not an http(s) URL; using ${OTLP_DEFAULTS.endpoint}`);
  }
  return withMetricsPath(OTLP_DEFAULTS.endpoint);
}

/** The base endpoint gets `v1/metrics` appended, after exactly one slash. */
function withMetricsPath(base: string): string {
  return `${base.endsWith("/") ? base : `${base}/`}v1/metrics`;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** The first variable of `names` that is set decides (signal-specific before general). */
function oneOf<T extends string>(env: Env, names: readonly string[], allowed: readonly T[], fallback: T, warnings: string[]): T {
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") continue;
    const value = raw.trim().toLowerCase();
    const match = allowed.find((candidate) => candidate === value);
    if (match !== undefined) return match;
    warnings.push(`${name}="${raw}" is not supported (expected ${allowed.join(" or ")}); using ${fallback}`);
    return fallback;
  }
  return fallback;
}

function milliseconds(env: Env, names: readonly string[], fallback: number, warnings: string[], minimum = 0): number {
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") continue;
    const value = Number(raw.trim());
    if (/^\d+$/.test(raw.trim()) && Number.isSafeInteger(value) && value >= minimum) return value;
    warnings.push(`${name}="${raw}" is not a whole number of milliseconds${minimum > 0 ? ` >= ${minimum}` : ""}; using ${fallback}`);
    return fallback;
  }
  return fallback;
}

/**
 * `key1=value1,key2=value2`, keys and values percent-decoded (W3C Baggage style, as the
 * specification says). A malformed entry is skipped with a warning that never shows its value:
 * headers carry credentials.
 */
function parseHeaders(env: Env, name: string, warnings: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  const entries = parseKeyValueList(env[name] ?? "");
  for (const entry of entries) {
    if (entry.ok && /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(entry.key)) headers[entry.key.toLowerCase()] = entry.value;
    else warnings.push(`${name}: ignoring entry ${entry.index + 1} (expected key=value with a valid header name)`);
  }
  return headers;
}

function parseResourceAttributes(env: Env, warnings: string[]): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const entry of parseKeyValueList(env[OTLP_ENV.resourceAttributes] ?? "")) {
    if (entry.ok && entry.key !== "") attributes[entry.key] = entry.value;
    else warnings.push(`${OTLP_ENV.resourceAttributes}: ignoring "${entry.raw}" (expected key=value, percent-encoded)`);
  }
  const serviceName = env[OTLP_ENV.serviceName]?.trim();
  if (serviceName !== undefined && serviceName !== "") attributes["service.name"] = serviceName;
  attributes["service.name"] ??= OTLP_DEFAULTS.serviceName;
  return attributes;
}

type KeyValueEntry = { index: number; raw: string } & ({ ok: true; key: string; value: string } | { ok: false });

function parseKeyValueList(raw: string): KeyValueEntry[] {
  const entries: KeyValueEntry[] = [];
  raw.split(",").forEach((part, index) => {
    if (part.trim() === "") return;
    const equals = part.indexOf("=");
    if (equals === -1) {
      entries.push({ index, raw: part.trim(), ok: false });
      return;
    }
    try {
      const key = decodeURIComponent(part.slice(0, equals).trim());
      const value = decodeURIComponent(part.slice(equals + 1).trim());
      entries.push({ index, raw: part.trim(), ok: true, key, value });
    } catch {
      entries.push({ index, raw: part.trim(), ok: false });
    }
  });
  return entries;
}
