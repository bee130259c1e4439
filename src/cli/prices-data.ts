/**
 * The built-in price table: plain data, in the same shape as a `--prices FILE` JSON file (so this
 * object can be copied into one as it is). To update it, change the numbers, `asOf` and `source`;
 * `test/cli/prices.test.ts` checks that the shape stays valid. Never fetched at run time.
 *
 * Units: USD per 1M tokens. `output: null` means the model bills input tokens only (embeddings).
 * Keys are the API model names the log shows; `aliases` are other names billed at that price.
 */
import type { PriceTable } from "./prices.js";

export const BUILTIN_PRICES: PriceTable = {
  asOf: "2026-10-06",
  currency: "USD",
  unit: "per 1M tokens",
  source:
    "docs.mistral.ai model cards (mistralai/platform-docs-public mirror 222f4ba of 2026-08-21, cards synced 2026-08-11/12; pricing page updated 2026-08-14) and the Mistral Large 4 card released 2026-10-06",
  notes: [
    "Estimates at list prices: cached input (10% of input), Batch (-50%), Priority (+75%) and regional inference (+10%) are not applied, because the log has no column for them.",
    "OCR, Voxtral, moderation and Leanstral prices are not in the source: their rows show n/a.",
  ],
  models: {
    "mistral-large-4-0": {
      name: "Mistral Large 4",
      input: 0.68,
      output: 2.09,
      aliases: ["mistral-large-4"],
      status: "preview",
      note: "Mistral Large 4 is priced at its public preview rate since 2026-10-06, 50% off the list price of 1.36 in / 4.18 out",
    },
    "mistral-large-2512": { name: "Mistral Large 3", input: 0.5, output: 1.5, status: "GA" },
    "mistral-large-latest": {
      name: "Mistral Large 3",
      input: 0.5,
      output: 1.5,
      status: "alias",
      note: "mistral-large-latest is priced as Large 3 (mistral-large-2512), whose card still lists the alias; whether it points to Large 4 since 2026-10-06 is unconfirmed",
    },
    "mistral-large-2411": { name: "Mistral Large 2.1", input: 2, output: 6, status: "deprecated" },
    "mistral-medium-3-5": { name: "Mistral Medium 3.5", input: 1.5, output: 7.5, aliases: ["mistral-medium-3"], status: "GA" },
    "mistral-medium-latest": {
      name: "Mistral Medium 3.5",
      input: 1.5,
      output: 7.5,
      status: "alias",
      note: "mistral-medium-latest is priced as Medium 3.5, as the docs say; one source saw the API serve it with mistral-medium-2508 (0.40 in / 2.00 out)",
    },
    "mistral-medium-2508": { name: "Mistral Medium 3.1", input: 0.4, output: 2, status: "deprecated" },
    "mistral-medium-2505": { name: "Mistral Medium 3", input: 0.4, output: 2, status: "deprecated" },
    "mistral-small-2603": {
      name: "Mistral Small 4",
      input: 0.15,
      output: 0.6,
      aliases: ["mistral-small-latest"],
      status: "GA",
      note: "Mistral Small 4 is priced at 0.15 in / 0.60 out, from the docs; some third parties quote 0.10 / 0.30",
    },
    "mistral-small-2506": { name: "Mistral Small 3.2", input: 0.1, output: 0.3, status: "deprecated" },
    "ministral-14b-2512": { name: "Ministral 3 14B", input: 0.2, output: 0.2, aliases: ["ministral-14b-latest"], status: "GA" },
    "ministral-8b-2512": { name: "Ministral 3 8B", input: 0.15, output: 0.15, aliases: ["ministral-8b-latest"], status: "GA" },
    "ministral-3b-2512": { name: "Ministral 3 3B", input: 0.1, output: 0.1, aliases: ["ministral-3b-latest"], status: "GA" },
    "ministral-8b-2410": { name: "Ministral 8B 24.10", input: 0.1, output: 0.1, status: "deprecated" },
    "ministral-3b-2410": { name: "Ministral 3B 24.10", input: 0.04, output: 0.04, status: "deprecated" },
    "codestral-2508": { name: "Codestral 25.08", input: 0.3, output: 0.9, aliases: ["codestral-latest"], status: "GA" },
    "codestral-embed-2505": { name: "Codestral Embed", input: 0.15, output: null, aliases: ["codestral-embed"], status: "GA" },
    "devstral-2512": { name: "Devstral 2", input: 0.4, output: 2, aliases: ["devstral-latest", "devstral-medium-latest"], status: "deprecated" },
    "labs-devstral-small-2512": { name: "Devstral Small 2", input: 0.1, output: 0.3, aliases: ["devstral-small-latest"], status: "deprecated" },
    "devstral-small-2507": { name: "Devstral Small 1.1", input: 0.1, output: 0.3, status: "deprecated" },
    "magistral-medium-2509": { name: "Magistral Medium 1.2", input: 2, output: 5, aliases: ["magistral-medium-latest"], status: "deprecated" },
    "magistral-small-2509": { name: "Magistral Small 1.2", input: 0.5, output: 1.5, aliases: ["magistral-small-latest"], status: "deprecated" },
    "pixtral-large-2411": { name: "Pixtral Large", input: 2, output: 6, aliases: ["pixtral-large-latest"], status: "deprecated" },
    "pixtral-12b-2409": { name: "Pixtral 12B", input: 0.15, output: 0.15, status: "deprecated" },
    "mistral-embed-2312": { name: "Mistral Embed", input: 0.1, output: null, aliases: ["mistral-embed"], status: "GA" },
    "open-mistral-nemo-2407": { name: "Mistral Nemo 12B", input: 0.15, output: 0.15, aliases: ["open-mistral-nemo"], status: "deprecated" },
  },
};
