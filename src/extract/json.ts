import { malformed, modelOf, readUsage, type Extraction } from "./counts.js";

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
