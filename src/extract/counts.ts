/** Token counts as the API reported them, and the checks that keep a malformed report out of the log. */

export interface UsageCounts {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly totalTokens: number;
}

/** What a response body yielded. Pure data: the caller decides what to log or warn. */
export type Extraction =
  | { readonly kind: "usage"; readonly counts: UsageCounts; readonly model: string | undefined }
  | { readonly kind: "none" }
  | { readonly kind: "malformed"; readonly reason: string };

export const NO_USAGE: Extraction = Object.freeze({ kind: "none" });

export function malformed(reason: string): Extraction {
  return { kind: "malformed", reason };
}

/**
 * Reads a `usage` object. `total_tokens` is taken as reported, never recomputed, because
 * moderations and transcriptions report totals that differ from the sum; a missing
 * `completion_tokens` is 0 (embeddings omit it); a missing total is the sum.
 */
export function readUsage(usage: unknown, model: string | undefined): Extraction {
  if (usage === undefined || usage === null) return NO_USAGE;
  if (typeof usage !== "object" || Array.isArray(usage)) return malformed("usage is not an object");
  const fields = usage as Record<string, unknown>;
  const prompt = readCount(fields, "prompt_tokens");
  const completion = readCount(fields, "completion_tokens");
  const total = readCount(fields, "total_tokens");
  if (prompt === INVALID) return invalidCount(fields, "prompt_tokens");
  if (completion === INVALID) return invalidCount(fields, "completion_tokens");
  if (total === INVALID) return invalidCount(fields, "total_tokens");
  if (prompt === undefined && total === undefined) return malformed("usage has neither prompt_tokens nor total_tokens");
  const promptTokens = (prompt as number | undefined) ?? 0;
  const completionTokens = (completion as number | undefined) ?? 0;
  const totalTokens = (total as number | undefined) ?? promptTokens + completionTokens;
  return { kind: "usage", counts: { promptTokens, completionTokens, totalTokens }, model };
}

const INVALID = Symbol("invalid");

/** Why a count was refused, in the words a reader of the warning needs. */
function invalidCount(fields: Record<string, unknown>, name: string): Extraction {
  const value = fields[name];
  const shown = JSON.stringify(value);
  if (typeof value === "number" && Number.isInteger(value)) {
    // 2^60 parses to a whole number, but not one a double holds exactly: say so, not "not whole".
    if (value < 0) return malformed(`usage.${name} is ${shown}, a negative count`);
    // Digits as the API most likely sent them (2^60, not JavaScript's 1152921504606847000).
    const digits = value < 1e21 ? BigInt(value).toString() : shown;
    return malformed(`usage.${name} is ${digits}, too large to be an exact count (more than ${Number.MAX_SAFE_INTEGER})`);
  }
  return malformed(`usage.${name} is ${shown}, not a whole number`);
}

function readCount(fields: Record<string, unknown>, name: string): number | undefined | typeof INVALID {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  return INVALID;
}

/** A non-empty model string, or undefined. */
export function modelOf(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}
