/**
 * Which metrics a usage event becomes, and with which attributes. Pure. The names are hard-coded:
 * the GenAI semantic conventions moved out of the npm semconv package, which has no constants for
 * the counters (otel-export.md, 1.1).
 */
import type { EndpointKind } from "../../endpoints.js";
import { UNKNOWN_MODEL } from "../../record/usage-event.js";
import type { WireEvent } from "./wire.js";

export const METRIC = {
  /** Counter, `{token}`: the conventions' metric for total usage (semantic-conventions-genai, PR #374). */
  inputTokens: "gen_ai.client.inference.usage.input_tokens",
  outputTokens: "gen_ai.client.inference.usage.output_tokens",
  /** Histogram, `{token}`, with `gen_ai.token.type`: the published (semconv <= 1.41) metric today's dashboards query. */
  tokenUsage: "gen_ai.client.token.usage",
} as const;

/** The advised bucket boundaries of `gen_ai.client.token.usage`: powers of 4 from 1 to 4^13. */
export const TOKEN_USAGE_BUCKETS: readonly number[] = Array.from({ length: 14 }, (_, i) => 4 ** i);

export const PROVIDER = "mistral_ai";

/**
 * `gen_ai.operation.name` per endpoint: the conventions' well-known values where one fits
 * (chat, text_completion, embeddings, invoke_agent), the endpoint's own name otherwise.
 */
export const OPERATION: Readonly<Record<EndpointKind, string>> = {
  chat: "chat",
  fim: "text_completion",
  agents: "invoke_agent",
  conversations: "chat",
  embeddings: "embeddings",
  moderations: "moderations",
  classifications: "classifications",
  transcriptions: "transcriptions",
  speech: "speech",
};

export type Attributes = Record<string, string | number>;

/**
 * The attributes shared by every data point of one call. `gen_ai.response.model` is the log's
 * `Model` column (the model the API returned, else the one requested, else "unknown"), so that
 * per-model sums compare with the CSV even for speech, whose responses name no model.
 */
export function callAttributes(event: WireEvent): Attributes {
  const [endpoint, address, port, requestModel, responseModel] = event;
  const attributes: Attributes = {
    "gen_ai.provider.name": PROVIDER,
    "gen_ai.operation.name": OPERATION[endpoint] ?? endpoint,
  };
  if (requestModel !== null) attributes["gen_ai.request.model"] = requestModel;
  attributes["gen_ai.response.model"] = responseModel ?? requestModel ?? UNKNOWN_MODEL;
  attributes["server.address"] = address;
  attributes["server.port"] = port;
  return attributes;
}
