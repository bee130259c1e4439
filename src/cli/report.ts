/** `mistral-usage report [FILE...]`: calls, tokens and estimated cost, per model, day or hour. */
import { stat, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { EXIT, EXIT_CODES_HELP, PROGRAM, UsageError, defaultLogFile, loadPrices, parseOptions, resolveFiles, styleFor, warn, write } from "./common.js";
import type { Command, Context } from "./common.js";
import { GROUP_BY, UsageAggregator, parseTimeBound, timeFilter } from "./aggregate.js";
import type { GroupBy, TimeBound, UsageGroup, UsageSummary } from "./aggregate.js";
import { formatDuration, formatInt, formatUsd, printable, renderTable, shortTime, wrap } from "./format.js";
import type { Column, Style } from "./format.js";
import { readLog } from "./log-reader.js";
import { fileStep, progressFor } from "./progress.js";
import type { PriceBook } from "./prices.js";

const HELP = `Usage: ${PROGRAM} report [options] [FILE...]

Sums the calls in one or more usage logs: calls, prompt, completion and total
tokens and the estimated cost in USD, per model (or per UTC day or hour), with
a total row and the time range covered. Several files are added together.
FILE defaults to $MISTRAL_USAGE_LOG, else mistral_usage_log.csv.

Options:
  --by model|day|hour  one row per model (default), per UTC day or UTC hour
  --since DATE         only calls at or after DATE (ISO 8601: 2026-11-24,
                       2026-11-24T10:00, 2026-11-24T10:00:00+02:00; UTC if
                       no offset is given)
  --until DATE         only calls before DATE; a bare date includes that day
  --json               machine-readable output (numbers unformatted)
  --html FILE          write the report as one web page to FILE ("-": stdout):
                       tokens and cost per day stacked by model, the table and
                       the notes; self-contained, it opens offline
  --prices FILE        JSON price table to use on top of the built-in one:
                       {"asOf": "2026-11-24", "models": {"mistral-small-2603":
                       {"input": 0.1, "output": 0.3, "aliases": ["..."]}}}
                       (USD per 1M tokens; "output": null for embeddings)
  -h, --help           show this help

Costs are estimates from a price table shipped with the package (dated; see
the notes under the table), never fetched from the network. A model the table
does not know shows n/a, and totals leave it out (marked *). Dated names such
as mistral-small-2603 and -latest aliases both resolve; an unknown dated name
FAMILY-YYMM is priced as FAMILY-latest, and the report says so.
Invalid rows are skipped and counted on stderr (see '${PROGRAM} validate').

${EXIT_CODES_HELP}
`;

const MAX_SHOWN_INVALID = 5;

export const reportCommand: Command = {
  name: "report",
  summary: "tokens and estimated cost per model, day or hour",
  help: HELP,
  async run(args, ctx) {
    const { values, positionals } = parseOptions("report", args, {
      by: { type: "string", default: "model" },
      since: { type: "string" },
      until: { type: "string" },
      json: { type: "boolean", default: false },
      html: { type: "string" },
      prices: { type: "string" },
    });
    const by = values.by as string;
    if (!(GROUP_BY as readonly string[]).includes(by)) throw new UsageError(`--by must be model, day or hour, got ${JSON.stringify(by)}`, "report");
    const since = bound("since", values.since as string | undefined);
    const until = bound("until", values.until as string | undefined);
    const inRange = timeFilter(since, until);
    if (since !== undefined && until !== undefined && !inRange(since.micros)) {
      throw new UsageError("--since must be before --until", "report");
    }
    const pricesFile = values.prices as string | undefined;
    const prices = await loadPrices(ctx, "report", pricesFile);

    const names = positionals.length > 0 ? positionals : [defaultLogFile(ctx)];
    const files = await distinctFiles(ctx, resolveFiles(ctx, names));
    const html = values.html as string | undefined;
    if (html !== undefined && values.json === true) throw new UsageError("--html and --json: choose one", "report");
    if (html === "") throw new UsageError("--html needs a FILE to write (or - for stdout)", "report");
    const aggregator = new UsageAggregator(by as GroupBy);
    // The page's charts are per day and model, whatever --by says.
    const daily = html === undefined ? undefined : by === "day" ? aggregator : new UsageAggregator("day");
    let fatal = false;
    let invalidRows = 0;
    const progress = progressFor(ctx, "report");
    for (const [index, { name, path }] of files.entries()) {
      let shown = 0;
      const result = await readLog(
        path,
        {
          row(row) {
            if (!inRange(row.micros)) return;
            aggregator.add(row);
            if (daily !== undefined && daily !== aggregator) daily.add(row);
          },
          invalid(record) {
            if (shown++ >= MAX_SHOWN_INVALID) return;
            progress.clear();
            warn(ctx, `${printable(name)}:${record.line}: skipped an invalid row (${PROGRAM} validate ${printable(name)} says why)`);
          },
        },
        { progress: (done, size) => progress.update(fileStep("reading", name, index, files.length), done, size) },
      );
      progress.clear();
      if (result.fatal !== undefined) {
        fatal = true;
        warn(ctx, `${printable(name)}${result.fatalLine ? `:${result.fatalLine}` : ""}: ${printable(result.fatal)}`);
      } else if (result.invalidRows > 0) {
        invalidRows += result.invalidRows;
        if (result.invalidRows > MAX_SHOWN_INVALID) warn(ctx, `${printable(name)}: ${formatInt(result.invalidRows)} invalid rows skipped in all`);
      }
    }
    if (fatal) {
      warn(ctx, "no report: fix or leave out the files above");
      return EXIT.problems;
    }
    const summary = aggregator.summarize(prices);
    const meta: ReportMeta = {
      files: files.map((f) => f.name),
      prices,
      ...(pricesFile === undefined ? {} : { pricesFile }),
      ...(values.since === undefined ? {} : { since: values.since as string }),
      ...(values.until === undefined ? {} : { until: values.until as string }),
      invalidRows,
    };
    if (html !== undefined) {
      // Loaded only here: nobody else pays for it.
      const { renderHtml } = await import("./report-html.js");
      const page = renderHtml(summary, (daily as UsageAggregator).byModel(), meta, `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`);
      if (html === "-") await write(ctx.stdout, page);
      else {
        try {
          await writeFile(resolve(ctx.cwd, html), page);
        } catch (err) {
          warn(ctx, `--html ${printable(html)}: cannot write it: ${(err as Error).message}`);
          return EXIT.problems;
        }
        warn(ctx, `report written to ${printable(html)}: open it in a browser`);
      }
    } else if (values.json === true) {
      await write(ctx.stdout, `${JSON.stringify(reportJson(summary, meta), null, 2)}\n`);
    } else {
      await write(ctx.stdout, renderReport(summary, meta, { width: textWidth(ctx), style: styleFor(ctx) }));
    }
    return invalidRows > 0 ? EXIT.problems : EXIT.ok;
  },
};

/**
 * The width the notes are wrapped to: on a terminal, $COLUMNS when set, else the terminal's own
 * (at least 60); 80 otherwise. The table is never cut to it: a model name is never shortened.
 */
export function textWidth(ctx: Context): number {
  if (ctx.stdout.isTTY !== true) return 80;
  const fromEnv = /^\d+$/.test(ctx.env["COLUMNS"] ?? "") ? Number(ctx.env["COLUMNS"]) : 0;
  const columns = fromEnv > 0 ? fromEnv : (ctx.stdout.columns ?? 0);
  return columns > 0 ? Math.max(60, columns) : 80;
}

function bound(name: string, value: string | undefined): TimeBound | undefined {
  if (value === undefined) return undefined;
  const parsed = parseTimeBound(value);
  if (typeof parsed === "string") throw new UsageError(`--${name}: ${parsed}`, "report");
  return parsed;
}

/** Drops a file named twice (same device and inode), so that its calls are not counted twice. */
async function distinctFiles(ctx: Context, files: { name: string; path: string }[]): Promise<{ name: string; path: string }[]> {
  const seen = new Map<string, string>();
  const out: { name: string; path: string }[] = [];
  for (const f of files) {
    const id = await stat(f.path).then(
      (s) => `${s.dev}:${s.ino}`,
      () => undefined,
    );
    const first = id === undefined ? undefined : seen.get(id);
    if (first !== undefined) {
      warn(ctx, `${printable(f.name)} is the same file as ${printable(first)}: counted once`);
      continue;
    }
    if (id !== undefined) seen.set(id, f.name);
    out.push(f);
  }
  return out;
}

export interface ReportMeta {
  readonly files: readonly string[];
  readonly prices: PriceBook;
  readonly pricesFile?: string;
  readonly since?: string;
  readonly until?: string;
  readonly invalidRows: number;
}

const FIRST_COLUMN: Record<GroupBy, string> = { model: "Model", day: "Day (UTC)", hour: "Hour (UTC)" };

function groupLabel(by: GroupBy, key: string): string {
  return by === "hour" ? `${key.slice(0, 10)} ${key.slice(11, 13)}:00` : printable(key);
}

function costCell(g: UsageGroup): string {
  if (g.costUsd === null) return "n/a";
  return g.unpricedCalls > 0 ? `${formatUsd(g.costUsd)}*` : formatUsd(g.costUsd);
}

/** What both the text and the HTML report show, as text. Pure. */
export interface ReportParts {
  /** "Mistral API usage in FILE". */
  readonly title: string;
  /** The number of calls and the time range, or "No calls." */
  readonly range: string;
  /** "Only calls selected by --since ...", when filtered. */
  readonly filter?: string;
  /** The table (absent when there are no calls): the header, the group rows, the total row. */
  readonly table?: { readonly columns: readonly Column[]; readonly rows: readonly (readonly string[])[]; readonly total: readonly string[] };
  /** Footnotes: unpriced models, fallback prices, the price table's notes, its date. */
  readonly notes: readonly string[];
  /** About invalid rows that were skipped. */
  readonly skipped?: string;
}

export function reportParts(summary: UsageSummary, meta: ReportMeta): ReportParts {
  const fileList = meta.files.map(printable).join(", ");
  const title = `Mistral API usage in ${meta.files.length === 1 ? fileList : `${meta.files.length} files: ${fileList}`}`;
  const filterText = [meta.since === undefined ? "" : `--since ${meta.since}`, meta.until === undefined ? "" : `--until ${meta.until}`].filter((s) => s !== "").join(" ");
  const calls = summary.total.calls;
  const skipped = meta.invalidRows > 0 ? `${formatInt(meta.invalidRows)} invalid row${meta.invalidRows === 1 ? " was" : "s were"} skipped (see stderr).` : undefined;
  if (calls === 0 || summary.first === undefined || summary.last === undefined) {
    return { title, range: `No calls${filterText === "" ? "" : ` (${filterText})`}.`, notes: [], ...(skipped === undefined ? {} : { skipped }) };
  }
  const range = `${formatInt(calls)} call${calls === 1 ? "" : "s"} from ${shortTime(summary.first.timestamp)} to ${shortTime(summary.last.timestamp)} UTC (${formatDuration(summary.last.micros - summary.first.micros)})`;
  const columns: Column[] = [
    { header: FIRST_COLUMN[summary.by], align: "left" },
    { header: "Calls", align: "right" },
    { header: "Prompt", align: "right" },
    { header: "Completion", align: "right" },
    { header: "Total", align: "right" },
    { header: "Est. cost", align: "right" },
  ];
  const marked = summary.groups.some((g) => g.unpricedCalls > 0 && g.costUsd !== null) || (summary.total.unpricedCalls > 0 && summary.total.costUsd !== null);
  const row = (label: string, g: UsageGroup): string[] => {
    const cost = costCell(g);
    return [label, formatInt(g.calls), formatInt(g.promptTokens), formatInt(g.completionTokens), formatInt(g.totalTokens), marked && !cost.endsWith("*") ? `${cost} ` : cost];
  };
  const notes: string[] = [];
  if (summary.unpriced.length > 0) {
    const list = summary.unpriced.map((u) => `${printable(u.model)} (${formatInt(u.calls)} call${u.calls === 1 ? "" : "s"})`).join(", ");
    notes.push(`n/a: no price known for ${list}. ${marked ? "Costs marked * leave these calls out. " : ""}Add a price with --prices FILE.`);
  }
  for (const p of summary.pricedAs) notes.push(`${printable(p.model)} is not in the price table: priced as ${printable(p.as)} (${printable(p.key)}).`);
  notes.push(...summary.notes.map(printable));
  notes.push(pricesLine(meta));
  return {
    title,
    range,
    ...(filterText === "" ? {} : { filter: `Only calls selected by ${filterText}` }),
    table: { columns, rows: summary.groups.map((g) => row(groupLabel(summary.by, g.key), g)), total: row("Total", summary.total) },
    notes,
    ...(skipped === undefined ? {} : { skipped }),
  };
}

/** The report as text for a terminal of `width` columns. Pure. */
export function renderReport(summary: UsageSummary, meta: ReportMeta, options: { width: number; style: Style }): string {
  const { width, style } = options;
  const parts = reportParts(summary, meta);
  const out: string[] = [];
  out.push(...wrap(parts.title, width, "  ").map((l, i) => (i === 0 ? style.bold(l) : l)));
  out.push(...(parts.table === undefined ? [parts.range] : wrap(parts.range, width, "  ")));
  if (parts.table === undefined) return `${out.join("\n")}\n`;
  if (parts.filter !== undefined) out.push(...wrap(parts.filter, width, "  "));
  out.push("");
  const rows = [...parts.table.rows, parts.table.total];
  // Never cut to the width: two models whose names differ only at the end would look the same.
  const table = renderTable(parts.table.columns, rows, { footerFrom: rows.length - 1 });
  out.push(...table.map((l, i) => (i === 0 || i === table.length - 1 ? style.bold(l) : l)));
  out.push("");
  for (const note of parts.notes) out.push(...wrap(note, width, "  ").map((l) => style.dim(l)));
  if (parts.skipped !== undefined) out.push(...wrap(parts.skipped, width, "  "));
  return `${out.join("\n")}\n`;
}

function pricesLine(meta: ReportMeta): string {
  const builtin = meta.prices.builtin;
  const base = `Estimated at list prices as of ${builtin.asOf ?? "an unknown date"} (USD per 1M tokens; no cache, batch or priority modifiers)`;
  if (meta.pricesFile === undefined) return `${base}.`;
  const asOf = meta.prices.override?.asOf;
  return `${base}, with ${printable(meta.pricesFile)}${asOf === undefined ? "" : ` (as of ${asOf})`} on top.`;
}

const round = (usd: number | null): number | null => (usd === null ? null : Math.round(usd * 1e10) / 1e10);

/** The report as a JSON value. Pure. */
export function reportJson(summary: UsageSummary, meta: ReportMeta): unknown {
  const group = (g: UsageGroup, named: boolean): Record<string, unknown> => ({
    ...(named ? { [summary.by]: summary.by === "hour" ? `${g.key}:00` : g.key } : {}),
    calls: g.calls,
    promptTokens: g.promptTokens,
    completionTokens: g.completionTokens,
    totalTokens: g.totalTokens,
    costUsd: round(g.costUsd),
    unpricedCalls: g.unpricedCalls,
  });
  return {
    files: meta.files,
    by: summary.by,
    since: meta.since ?? null,
    until: meta.until ?? null,
    first: summary.first?.timestamp ?? null,
    last: summary.last?.timestamp ?? null,
    groups: summary.groups.map((g) => group(g, true)),
    total: group(summary.total, false),
    unpricedModels: summary.unpriced,
    pricedAs: summary.pricedAs,
    invalidRows: meta.invalidRows,
    prices: {
      asOf: meta.prices.builtin.asOf ?? null,
      source: meta.prices.builtin.source ?? null,
      file: meta.pricesFile ?? null,
      fileAsOf: meta.prices.override?.asOf ?? null,
    },
    notes: summary.notes,
  };
}
