/**
 * `report --html FILE`: the report as one self-contained page. Inline CSS and SVG only: no script,
 * no font, no image, nothing fetched, so it opens offline in any browser and can be mailed as it
 * is. Pure: returns the page's text.
 */
import type { Counts, UsageSummary } from "./aggregate.js";
import { formatInt, formatUsd, printable } from "./format.js";
import { costUsd } from "./prices.js";
import type { PriceBook } from "./prices.js";
import { reportParts } from "./report.js";
import type { ReportMeta } from "./report.js";

/** Counts per UTC day (`YYYY-MM-DD`) and model. */
export type DailyUsage = ReadonlyMap<string, ReadonlyMap<string, Readonly<Counts>>>;

// Distinct in hue and lightness, readable on white, and told apart by most colour-blind readers
// (Okabe-Ito, then Tol's muted); the last one is for "other models".
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#332288", "#999933", "#882255"];
const OTHER_COLOR = "#9a9a9a";
const OTHER = "other models";

const escapeHtml = (text: string): string =>
  printable(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);

interface Series {
  readonly name: string;
  readonly color: string;
}

interface Bar {
  readonly day: string;
  /** Per series, in series order. */
  readonly values: readonly number[];
}

export function renderHtml(summary: UsageSummary, daily: DailyUsage, meta: ReportMeta, generatedAt: string): string {
  const parts = reportParts(summary, meta);
  const days = [...daily.keys()].sort();
  // The models with the most tokens get a colour each; the rest share one.
  const tokensByModel = new Map<string, number>();
  for (const models of daily.values()) for (const [model, c] of models) tokensByModel.set(model, (tokensByModel.get(model) ?? 0) + c.totalTokens);
  const ranked = [...tokensByModel].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([m]) => m);
  const named = ranked.length <= PALETTE.length ? ranked : ranked.slice(0, PALETTE.length - 1);
  const series: Series[] = named.map((name, i) => ({ name, color: PALETTE[i] as string }));
  if (named.length < ranked.length) series.push({ name: OTHER, color: OTHER_COLOR });
  const slot = (model: string): number => {
    const i = named.indexOf(model);
    return i === -1 ? series.length - 1 : i;
  };
  const tokenBars: Bar[] = [];
  const costBars: Bar[] = [];
  for (const day of days) {
    const tokens = new Array<number>(series.length).fill(0);
    const cost = new Array<number>(series.length).fill(0);
    for (const [model, c] of daily.get(day) ?? []) {
      const at = slot(model);
      tokens[at] = (tokens[at] as number) + c.totalTokens;
      const price = meta.prices.resolve(model);
      if (price !== undefined) cost[at] = (cost[at] as number) + costUsd(price.entry, c.promptTokens, c.completionTokens);
    }
    tokenBars.push({ day, values: tokens });
    costBars.push({ day, values: cost });
  }
  const unpriced = summary.unpriced.length > 0 ? ` Models without a price (${summary.unpriced.map((u) => escapeHtml(u.model)).join(", ")}) are left out.` : "";

  const out: string[] = [];
  out.push(
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // No network, whatever the page contains: a log's model names are data, never markup.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>${escapeHtml(parts.title)}</title>`,
    `<style>${CSS}</style>`,
    "</head>",
    "<body>",
    "<main>",
    `<h1>${escapeHtml(parts.title)}</h1>`,
    `<p class="range">${escapeHtml(parts.range)}</p>`,
  );
  if (parts.filter !== undefined) out.push(`<p class="filter">${escapeHtml(parts.filter)}</p>`);
  if (parts.table !== undefined) {
    out.push('<section class="charts">');
    out.push(legend(series));
    out.push(`<figure><figcaption>Total tokens per day (UTC)</figcaption>${chart(tokenBars, series, "tokens", (v) => formatInt(v), compactInt)}</figure>`);
    out.push(
      `<figure><figcaption>Estimated cost per day (UTC), USD.${unpriced}</figcaption>${chart(costBars, series, "cost", (v) => formatUsd(v), compactUsd)}</figure>`,
    );
    out.push("</section>");
    const { columns, rows, total } = parts.table;
    const cells = (row: readonly string[], tag: "td" | "th"): string =>
      row.map((cell, i) => `<${tag} class="${columns[i]?.align === "right" ? "num" : "label"}">${escapeHtml(cell.trimEnd())}</${tag}>`).join("");
    out.push('<div class="table"><table id="usage">');
    out.push(`<thead><tr>${columns.map((c) => `<th scope="col" class="${c.align === "right" ? "num" : "label"}">${escapeHtml(c.header)}</th>`).join("")}</tr></thead>`);
    out.push(`<tbody>${rows.map((r) => `<tr>${cells(r, "td")}</tr>`).join("\n")}</tbody>`);
    out.push(`<tfoot><tr id="total">${cells(total, "th")}</tr></tfoot>`);
    out.push("</table></div>");
  }
  if (parts.notes.length > 0) out.push(`<ul class="notes">${parts.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`);
  if (parts.skipped !== undefined) out.push(`<p class="skipped">${escapeHtml(parts.skipped)}</p>`);
  out.push(`<footer>Made by mistral-usage report --html on ${escapeHtml(generatedAt)}. Estimates, not an invoice.</footer>`);
  out.push("</main>", "</body>", "</html>", "");
  return out.join("\n");
}

function legend(series: readonly Series[]): string {
  const items = series.map((s) => `<li><span class="swatch" style="background:${s.color}"></span>${escapeHtml(s.name)}</li>`);
  return `<ul class="legend">${items.join("")}</ul>`;
}

const W = 760;
const H = 220;
const LEFT = 64;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 28;

/** A stacked bar per day; each segment has a tooltip (an SVG title). */
function chart(bars: readonly Bar[], series: readonly Series[], what: string, exact: (v: number) => string, axis: (v: number) => string): string {
  const max = Math.max(0, ...bars.map((b) => b.values.reduce((a, v) => a + v, 0)));
  const { step: gridStep, top } = gridFor(max);
  const plotW = W - LEFT - RIGHT;
  const plotH = H - TOP - BOTTOM;
  const step = plotW / Math.max(1, bars.length);
  const barW = Math.max(1, Math.min(48, step * 0.8));
  const y = (v: number): number => TOP + plotH - (top === 0 ? 0 : (v / top) * plotH);
  const out: string[] = [`<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(what)} per day">`];
  for (let i = 0; i * gridStep <= top + 1e-12; i++) {
    const v = i * gridStep;
    const yy = y(v).toFixed(1);
    out.push(`<line class="grid" x1="${LEFT}" x2="${W - RIGHT}" y1="${yy}" y2="${yy}"/><text class="tick" x="${LEFT - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${escapeHtml(axis(v))}</text>`);
  }
  // Day labels: as many as fit, evenly spread, from the first day on.
  const every = Math.max(1, Math.ceil(bars.length / Math.floor(plotW / 80)));
  const oneYear = bars.length > 0 && bars[0]?.day.slice(0, 4) === bars.at(-1)?.day.slice(0, 4);
  // One path per model (a year of days stays a few kB), then a transparent column per day that
  // carries the day's figures as its tooltip.
  const paths = series.map(() => [] as string[]);
  const tips: string[] = [];
  bars.forEach((bar, i) => {
    const x = (LEFT + i * step + (step - barW) / 2).toFixed(1);
    let base = 0;
    const total = bar.values.reduce((a, v) => a + v, 0);
    const lines: string[] = [];
    bar.values.forEach((v, k) => {
      if (v <= 0) return;
      const y0 = y(base);
      const y1 = y(base + v);
      base += v;
      paths[k]?.push(`M${x} ${y1.toFixed(1)}h${barW.toFixed(1)}v${Math.max(0.5, y0 - y1).toFixed(1)}h-${barW.toFixed(1)}z`);
      lines.push(`${series[k]?.name ?? ""}: ${exact(v)}`);
    });
    tips.push(`<rect class="tip" x="${(LEFT + i * step).toFixed(1)}" y="${TOP}" width="${step.toFixed(1)}" height="${plotH}"><title>${escapeHtml(`${bar.day}: ${exact(total)}\n${lines.reverse().join("\n")}`)}</title></rect>`);
    if (i % every === 0) {
      out.push(`<text class="day" x="${(LEFT + i * step + step / 2).toFixed(1)}" y="${H - 8}" text-anchor="middle">${escapeHtml(oneYear ? bar.day.slice(5) : bar.day)}</text>`);
    }
  });
  paths.forEach((d, k) => {
    if (d.length > 0) out.push(`<path fill="${series[k]?.color ?? OTHER_COLOR}" d="${d.join("")}"/>`);
  });
  out.push(...tips);
  out.push(`<line class="axis" x1="${LEFT}" x2="${W - RIGHT}" y1="${y(0).toFixed(1)}" y2="${y(0).toFixed(1)}"/>`);
  out.push("</svg>");
  return out.join("");
}

/** A round step (1, 2, 2.5 or 5 times a power of ten) for about four grid lines up to `max`, and the top line. */
function gridFor(max: number): { step: number; top: number } {
  if (max <= 0) return { step: 1, top: 0 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * power >= rough) ?? 10) * power;
  return { step, top: Math.ceil(max / step - 1e-9) * step };
}

function compactInt(v: number): string {
  if (v >= 1e9) return `${trim(v / 1e9)}B`;
  if (v >= 1e6) return `${trim(v / 1e6)}M`;
  if (v >= 1e3) return `${trim(v / 1e3)}k`;
  return trim(v);
}

function compactUsd(v: number): string {
  if (v === 0) return "$0";
  if (v >= 1000) return `$${compactInt(v)}`;
  if (v >= 1) return `$${trim(v)}`;
  return `$${Number(v.toPrecision(3))}`;
}

const trim = (v: number): string => String(Number(v.toFixed(2)));

const CSS = `
:root{color-scheme:light;--ink:#1d2329;--muted:#5b6670;--rule:#d9dee3;--band:#f4f6f8}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
main{max-width:820px;margin:0 auto;padding:28px 24px 40px}
h1{font-size:22px;margin:0 0 4px;overflow-wrap:anywhere}
.range,.filter{margin:0;color:var(--muted)}
.charts{margin:20px 0 8px}
figure{margin:12px 0 20px}
figcaption{font-weight:600;margin:0 0 6px}
svg{width:100%;height:auto;display:block}
svg .grid{stroke:var(--rule);stroke-width:1}
svg .axis{stroke:var(--muted);stroke-width:1}
svg .tip{fill:transparent}
svg .tip:hover{fill:rgba(0,0,0,.06)}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--muted)}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:6px 18px;padding:0;margin:0 0 4px}
.legend li{display:flex;align-items:center;gap:6px;overflow-wrap:anywhere}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;flex:none}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid var(--rule)}
thead th{border-bottom:2px solid var(--ink);text-align:left}
tbody tr:nth-child(even){background:var(--band)}
tfoot th{border-top:2px solid var(--ink);border-bottom:none}
.num{text-align:right;white-space:nowrap}
.label{text-align:left;white-space:nowrap}
.table{overflow-x:auto}
.notes{color:var(--muted);padding-left:18px;margin:8px 0}
.notes li{margin:3px 0}
footer{margin-top:24px;color:var(--muted);font-size:13px}
`.trim();
