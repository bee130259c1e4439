import type { EndpointKind, Server } from "../endpoints.js";
import type { UsageCounts } from "../extract/counts.js";

/**
 * What one successful, usage-bearing Mistral call is reported as, before it is stamped with a time.
 * The record stage (`ObservedCall`) produces it; the pipeline stamps it and hands it to the sinks.
 */
export interface CallUsage {
  /** Which endpoint was called: chat, fim, agents, embeddings, conversations... */
  readonly endpoint: EndpointKind;
  /** The server the app addressed (not a forward proxy in between). */
  readonly server: Server;
  /** The `model` of the request body, when it was read (only for endpoints whose response may lack one). */
  readonly requestModel: string | undefined;
  /** The model the response named, when it named one. */
  readonly responseModel: string | undefined;
  /** Token counts as the API reported them. */
  readonly counts: UsageCounts;
}

/** A call's usage as every sink receives it: one timestamp, shared by all of them. */
export interface UsageEvent extends CallUsage {
  /** When the usage was recorded, in microseconds since the Unix epoch (UTC). */
  readonly epochMicros: number;
}

/** Used when neither the response nor the request names a model (speech and conversations can do that). */
export const UNKNOWN_MODEL = "unknown";

/** The model the log's `Model` column holds: the one the API returned, else the one requested. */
export function loggedModel(usage: CallUsage): string {
  return usage.responseModel ?? usage.requestModel ?? UNKNOWN_MODEL;
}
