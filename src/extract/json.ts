import { malformed, modelOf, readUsage, type Extraction } from "./counts.js";
import { membersFromTail } from "./json-tail.js";

/**
 * From this size on, a JSON body's `usage` and `model` are first looked for at its end
 * (extract/json-tail.ts). Below it, `JSON.parse` costs about 1 µs per 400 bytes and validates the
 * whole body; above it (embeddings of many inputs: 400 KB for 32 inputs, 1.2 ms to parse), the
 * tail costs microseconds.
 */
export const LARGE_JSON_BYTES = 64 * 1024;
/** How far from the end the tail is read before the whole body is parsed instead. */
const TAIL_BYTES = 64 * 1024;

/**
 * Extracts usage and model from a complete JSON response body, given as the chunks it arrived in
 * (decoded). A large body is read from its end when that answers for certain, without joining it.
 */
export function extractFromJsonChunks(chunks: readonly Buffer[], size: number): Extraction {
  if (size >= LARGE_JSON_BYTES && firstNonSpaceByte(chunks) === 0x7b /* { */) {
    const members = membersFromTail(lastBytes(chunks, TAIL_BYTES));
    if (members !== undefined) {
      try {
        const model = modelOf(JSON.parse(members.model));
        // No model at the top: conversations name it in `outputs`, which the whole parse reads.
        if (model !== undefined) return readUsage(JSON.parse(members.usage), model);
      } catch {
        // Not JSON after all: the whole parse says how.
      }
    }
  }
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  return extractFromJson(body.toString("utf8"));
}

/** The first byte that is not JSON white space or a byte-order mark, or undefined. */
export function firstNonSpaceByte(chunks: readonly Uint8Array[]): number | undefined {
  for (const chunk of chunks) {
    for (const byte of chunk) {
      if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09 && byte !== 0xef && byte !== 0xbb && byte !== 0xbf) return byte;
    }
  }
  return undefined;
}

/** At least the last `count` bytes of the chunks (whole chunks), joined; all of them if fewer. */
function lastBytes(chunks: readonly Buffer[], count: number): Buffer {
  let first = chunks.length;
  let size = 0;
  while (first > 0 && size < count) size += chunks[--first]!.length;
  return first === chunks.length - 1 ? chunks[first]! : Buffer.concat(chunks.slice(first), size);
}

/**
 * Extracts usage and model from a complete JSON response body. The model is the top-level
 * `model`; conversations have none there, so the first `outputs[].model` stands in.
 */
export function extractFromJson(text: string): Extraction {
  let body: unknown;
  try {
    // response.json() drops a byte-order mark (UTF-8 decode does); so do we.
    body = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    return malformed(text.trim() === "" ? "the body is empty" : "the body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return malformed("the body is not a JSON object");
  }
  const fields = body as Record<string, unknown>;
  return readUsage(fields["usage"], modelOf(fields["model"]) ?? firstOutputModel(fields["outputs"]));
}

function firstOutputModel(outputs: unknown): string | undefined {
  if (!Array.isArray(outputs)) return undefined;
  for (const entry of outputs) {
    if (typeof entry === "object" && entry !== null) {
      const model = modelOf((entry as Record<string, unknown>)["model"]);
      if (model !== undefined) return model;
    }
  }
  return undefined;
}

/** The `model` of a JSON request body, for endpoints whose responses may not name it. */
export function modelFromRequestBody(text: string): string | undefined {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null) return modelOf((body as Record<string, unknown>)["model"]);
  } catch {
    // Multipart or otherwise not JSON: no model to fall back on.
  }
  return undefined;
}
