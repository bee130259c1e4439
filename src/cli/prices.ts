/**
 * Prices: the table's shape and its validation, model-name resolution, and cost. Pure.
 */

export interface PriceEntry {
  /** Display name, e.g. "Mistral Small 4". */
  readonly name?: string;
  /** USD per 1M prompt (input) tokens. */
  readonly input: number;
  /** USD per 1M completion (output) tokens; null for models that bill input only (embeddings). */
  readonly output: number | null;
  /** Other model names billed at this price (`-latest` aliases, undated names). */
  readonly aliases?: readonly string[];
  readonly status?: string;
  /** Shown under the report when this model appears in it (a conflict between sources, a preview price). */
  readonly note?: string;
}

export interface PriceTable {
  /** The date the prices were checked, YYYY-MM-DD. */
  readonly asOf?: string;
  readonly currency?: "USD";
  readonly unit?: "per 1M tokens";
  readonly source?: string;
  readonly notes?: readonly string[];
  readonly models: Readonly<Record<string, PriceEntry>>;
}

export class PriceTableError extends Error {
  constructor(
    readonly origin: string,
    readonly problems: readonly string[],
  ) {
    super(`${origin}: not a valid price table:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

const TABLE_KEYS = new Set(["$schema", "asOf", "currency", "unit", "source", "notes", "models"]);
const ENTRY_KEYS = new Set(["name", "input", "output", "aliases", "status", "note"]);

/**
 * Checks that `value` (parsed JSON) is a price table and returns it; throws PriceTableError listing
 * every problem, with its JSON path. Unknown keys are errors: a typo such as `"imput"` must not
 * quietly turn a price into n/a.
 */
export function validatePriceTable(value: unknown, origin: string): PriceTable {
  const problems: string[] = [];
  if (!isObject(value)) throw new PriceTableError(origin, [`expected a JSON object with "models", got ${kind(value)}`]);
  for (const key of Object.keys(value)) {
    if (!TABLE_KEYS.has(key)) problems.push(`unknown key ${JSON.stringify(key)} (allowed: ${[...TABLE_KEYS].join(", ")})`);
  }
  const { asOf, currency, unit, source, notes, models } = value;
  if (asOf !== undefined && (typeof asOf !== "string" || !/^\d{4}-\d\d-\d\d$/.test(asOf) || Number.isNaN(Date.parse(asOf)))) {
    problems.push(`asOf must be a date "YYYY-MM-DD", got ${show(asOf)}`);
  }
  if (currency !== undefined && currency !== "USD") problems.push(`currency must be "USD", got ${show(currency)}`);
  if (unit !== undefined && unit !== "per 1M tokens") problems.push(`unit must be "per 1M tokens", got ${show(unit)}`);
  if (source !== undefined && typeof source !== "string") problems.push(`source must be a string, got ${kind(source)}`);
  if (notes !== undefined && (!Array.isArray(notes) || !notes.every((n) => typeof n === "string"))) problems.push("notes must be an array of strings");
  if (!isObject(models)) {
    problems.push(models === undefined ? `"models" is missing` : `models must be an object of model name -> {"input", "output"}, got ${kind(models)}`);
    throw new PriceTableError(origin, problems);
  }
  const names = new Map<string, string>();
  for (const [key, entry] of Object.entries(models)) {
    const at = `models[${JSON.stringify(key)}]`;
    if (key.trim() === "") problems.push(`${at}: the model name is empty`);
    if (!isObject(entry)) {
      problems.push(`${at} must be an object such as {"input": 0.15, "output": 0.6}, got ${kind(entry)}`);
      continue;
    }
    for (const k of Object.keys(entry)) {
      if (!ENTRY_KEYS.has(k)) problems.push(`${at}: unknown key ${JSON.stringify(k)} (allowed: ${[...ENTRY_KEYS].join(", ")})`);
    }
    if (!isPrice(entry["input"])) problems.push(`${at}.input must be a number >= 0 (USD per 1M tokens), got ${show(entry["input"])}`);
    if (entry["output"] !== null && !isPrice(entry["output"])) {
      problems.push(`${at}.output must be a number >= 0 (USD per 1M tokens), or null for input-only models, got ${show(entry["output"])}`);
    }
    for (const k of ["name", "status", "note"] as const) {
      if (entry[k] !== undefined && typeof entry[k] !== "string") problems.push(`${at}.${k} must be a string, got ${kind(entry[k])}`);
    }
    const aliases = entry["aliases"];
    if (aliases !== undefined && (!Array.isArray(aliases) || !aliases.every((a) => typeof a === "string" && a.trim() !== ""))) {
      problems.push(`${at}.aliases must be an array of model names`);
    }
    for (const name of [key, ...(Array.isArray(aliases) ? aliases.filter((a): a is string => typeof a === "string") : [])]) {
      const owner = names.get(name);
      if (owner !== undefined && owner !== key) problems.push(`${JSON.stringify(name)} names both ${JSON.stringify(owner)} and ${JSON.stringify(key)}`);
      else names.set(name, key);
    }
  }
  if (Object.keys(models).length === 0) problems.push("models is empty");
  if (problems.length > 0) throw new PriceTableError(origin, problems);
  return value as unknown as PriceTable;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isPrice(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0;
}

function kind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${show(value)}`;
}

function show(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** How a model name found its price. */
export interface Resolution {
  /** The table key whose price applies. */
  readonly key: string;
  readonly entry: PriceEntry;
  /**
   * `exact`: the name is a key or alias. `latest`: `NAME-latest` is. `family`: a dated name
   * `FAMILY-YYMM` that the table does not list, priced as `FAMILY-latest` (or `FAMILY`).
   */
  readonly via: "exact" | "latest" | "family";
  /** The name that matched (differs from the model for `latest` and `family`). */
  readonly matched: string;
  /** Where the price came from. */
  readonly origin: "builtin" | "file";
}

/** The built-in table with an optional override table on top; resolves model names to prices. */
export class PriceBook {
  readonly #byName = new Map<string, { key: string; entry: PriceEntry; origin: "builtin" | "file" }>();
  readonly #cache = new Map<string, Resolution | null>();

  /**
   * An override's entries replace the built-in entry of the same key (its aliases then resolve to
   * the new price too) and add new names; its aliases take precedence over built-in ones.
   */
  constructor(
    readonly builtin: PriceTable,
    readonly override?: PriceTable,
  ) {
    const keys = new Map<string, { entry: PriceEntry; origin: "builtin" | "file" }>();
    for (const [key, entry] of Object.entries(builtin.models)) keys.set(key, { entry, origin: "builtin" });
    for (const [key, entry] of Object.entries(override?.models ?? {})) keys.set(key, { entry, origin: "file" });
    for (const table of override === undefined ? [builtin] : [builtin, override]) {
      for (const [key, entry] of Object.entries(table.models)) {
        const current = keys.get(key);
        if (current === undefined) continue;
        for (const name of [key, ...(entry.aliases ?? [])]) this.#byName.set(name, { key, ...current });
      }
    }
  }

  /** Exact name or alias, then `NAME-latest`, then a dated `FAMILY-YYMM` as `FAMILY-latest` / `FAMILY`. */
  resolve(model: string): Resolution | undefined {
    const cached = this.#cache.get(model);
    if (cached !== undefined) return cached ?? undefined;
    const found = this.#find(model);
    this.#cache.set(model, found ?? null);
    return found;
  }

  #find(model: string): Resolution | undefined {
    const exact = this.#byName.get(model);
    if (exact !== undefined) return { ...exact, via: "exact", matched: model };
    const latest = this.#byName.get(`${model}-latest`);
    if (latest !== undefined) return { ...latest, via: "latest", matched: `${model}-latest` };
    const dated = /^(.+)-\d{4}$/.exec(model);
    if (dated !== null) {
      const family = dated[1] as string;
      for (const name of [`${family}-latest`, family]) {
        const hit = this.#byName.get(name);
        if (hit !== undefined) return { ...hit, via: "family", matched: name };
      }
    }
    return undefined;
  }
}

/** Estimated cost in USD of the given token counts at `entry`'s prices. */
export function costUsd(entry: PriceEntry, promptTokens: number, completionTokens: number): number {
  return (promptTokens * entry.input + completionTokens * (entry.output ?? 0)) / 1_000_000;
}
