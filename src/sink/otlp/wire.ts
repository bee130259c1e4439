/**
 * What crosses a thread boundary for the metrics export: a usage event as a small array (structured
 * clone copies arrays of primitives faster than objects), and the messages the exporter thread takes.
 * Shared by the thin sink (in the preload bundle) and the exporter thread, so it imports only types.
 */
import type { EndpointKind } from "../../endpoints.js";
import type { UsageEvent } from "../../record/usage-event.js";

export type WireEvent = readonly [
  endpoint: EndpointKind,
  serverAddress: string,
  serverPort: number,
  requestModel: string | null,
  responseModel: string | null,
  promptTokens: number,
  completionTokens: number,
];

export function toWire(event: UsageEvent): WireEvent {
  return [
    event.endpoint,
    event.server.address,
    event.server.port,
    event.requestModel ?? null,
    event.responseModel ?? null,
    event.counts.promptTokens,
    event.counts.completionTokens,
  ];
}

/** A batch an app's worker thread hands to the main thread's sink, over a BroadcastChannel of this name. */
export const WORKER_CHANNEL = "mistral-usage-log:otlp:1";
export interface ChannelBatch {
  readonly events: readonly WireEvent[];
}

/** To the exporter thread. */
export type ToExporter =
  | { readonly kind: "events"; readonly events: readonly WireEvent[] }
  /** Export now; when done, store `seq` in shared[FLUSHED] and notify. */
  | { readonly kind: "flush"; readonly seq: number };

/** From the exporter thread, on its report port. */
export interface FromExporter {
  readonly kind: "warning";
  readonly message: string;
}

/** Int32 slots of the SharedArrayBuffer the two threads share. */
export const SLOT = {
  /** The last flush `seq` the exporter thread finished (successfully or not). */
  flushed: 0,
  /** 1 while exports fail (an outage the exporter thread has already warned about), else 0. */
  failing: 1,
} as const;
export const SHARED_SLOTS = 2;

/** Checks a batch that arrived from another thread (it could come from another copy or version of this package). */
export function isWireEvent(value: unknown): value is WireEvent {
  return (
    Array.isArray(value) &&
    value.length === 7 &&
    typeof value[0] === "string" &&
    typeof value[1] === "string" &&
    typeof value[2] === "number" &&
    (value[3] === null || typeof value[3] === "string") &&
    (value[4] === null || typeof value[4] === "string") &&
    Number.isSafeInteger(value[5]) &&
    Number.isSafeInteger(value[6])
  );
}
