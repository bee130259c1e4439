/**
 * Text formatting for people: numbers, money, durations, tables, wrapping, colour. Pure.
 */

/** `1234567` -> `1,234,567` (always this style, whatever the locale, so output is stable). */
export function formatInt(n: number): string {
  const sign = n < 0 ? "-" : "";
  return sign + String(Math.trunc(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * USD with four decimals (hackathon costs are often below a cent). A positive amount that would
 * round to zero shows `<$0.0001`, never `$0.0000`; an unknown amount shows `n/a`.
 */
export function formatUsd(amount: number | null): string {
  if (amount === null) return "n/a";
  if (amount > 0 && amount < 0.00005) return "<$0.0001";
  const [whole, frac] = amount.toFixed(4).split(".") as [string, string];
  return `$${formatInt(Number(whole))}.${frac}`;
}

/** `2026-11-24T10:30:01.123456+00:00` -> `2026-11-24 10:30:01`. */
export function shortTime(timestamp: string): string {
  return `${timestamp.slice(0, 10)} ${timestamp.slice(11, 19)}`;
}

/** A duration in microseconds as `45s`, `7m 3s`, `7h 32m`, `2d 3h`. */
export function formatDuration(micros: number): string {
  const s = Math.max(0, Math.round(micros / 1_000_000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** Replaces control characters (terminal escape sequences, line breaks) in text from a file. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

export type Align = "left" | "right";

export interface Column {
  readonly header: string;
  readonly align: Align;
  /** The column that gets cut (with …) when the table is wider than `maxWidth`. */
  readonly shrink?: boolean;
  /** Narrowest width it may be cut to. */
  readonly minWidth?: number;
}

export interface TableOptions {
  readonly maxWidth?: number;
  /** Rows from this index on are set off by a rule (the total row). */
  readonly footerFrom?: number;
  readonly gap?: number;
}

/** Lays out a table: a header, a rule, the rows; columns padded, numbers right-aligned. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[], options: TableOptions = {}): string[] {
  const gap = options.gap ?? 2;
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const maxWidth = options.maxWidth ?? Infinity;
  const total = (): number => widths.reduce((a, b) => a + b, 0) + gap * (columns.length - 1);
  const over = total() - maxWidth;
  if (over > 0) {
    const i = columns.findIndex((c) => c.shrink === true);
    if (i !== -1) {
      const col = columns[i] as Column;
      widths[i] = Math.max(col.minWidth ?? 8, col.header.length, (widths[i] as number) - over);
    }
  }
  const line = (cells: readonly string[]): string =>
    columns
      .map((c, i) => {
        const w = widths[i] as number;
        let cell = cells[i] ?? "";
        if (cell.length > w) cell = `${cell.slice(0, w - 1)}…`;
        return c.align === "right" ? cell.padStart(w) : cell.padEnd(w);
      })
      .join(" ".repeat(gap))
      .trimEnd();
  const rule = "-".repeat(total());
  const out = [line(columns.map((c) => c.header)), rule];
  rows.forEach((r, i) => {
    if (options.footerFrom !== undefined && i === options.footerFrom && i > 0) out.push(rule);
    out.push(line(r));
  });
  return out;
}

/** Word-wraps `text` to `width` columns; continuation lines get `indent`. */
export function wrap(text: string, width: number, indent = ""): string[] {
  const lines: string[] = [];
  let current = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    const candidate = current === "" ? word : `${current} ${word}`;
    const limit = lines.length === 0 ? width : width - indent.length;
    if (candidate.length > limit && current !== "") {
      lines.push(current);
      current = word;
    } else {
      current = candidate;
    }
  }
  if (current !== "") lines.push(current);
  return lines.map((l, i) => (i === 0 ? l : indent + l));
}

export interface Style {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
}

const plain = (text: string): string => text;
export const NO_STYLE: Style = { bold: plain, dim: plain, red: plain, green: plain, yellow: plain };
const sgr =
  (open: number, close: number) =>
  (text: string): string =>
    `\u001b[${open}m${text}\u001b[${close}m`;
export const ANSI_STYLE: Style = { bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39) };

/** Colour only on a terminal, and never when NO_COLOR is set to anything but the empty string (no-color.org). */
export function useColor(isTTY: boolean | undefined, env: Readonly<Record<string, string | undefined>>): boolean {
  const noColor = env["NO_COLOR"];
  return isTTY === true && (noColor === undefined || noColor === "") && env["TERM"] !== "dumb";
}
