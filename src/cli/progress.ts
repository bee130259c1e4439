/**
 * A progress line on stderr for commands that read big logs: only on a terminal, and only once a
 * command has run half a second and looks to need more than a second in all. Nothing when stderr
 * is a pipe or a file, so scripts and logs never see it.
 */
import { PROGRAM } from "./common.js";
import { printable } from "./format.js";
import type { Context } from "./common.js";

export interface Progress {
  /** `done` of `total` (bytes, rows) of the step `what`. */
  update(what: string, done: number, total: number): void;
  /** Removes the line, before other output and at the end. */
  clear(): void;
}

const QUIET_MS = 500;
const WORTH_MS = 1000;
const EVERY_MS = 100;

const NONE: Progress = { update() {}, clear() {} };

export function progressFor(ctx: Context, command: string, now: () => number = () => performance.now()): Progress {
  if (ctx.stderr.isTTY !== true || ctx.env["TERM"] === "dumb") return NONE;
  const started = now();
  let shown = false;
  let drawn = -Infinity;
  return {
    update(what, done, total) {
      const t = now();
      const elapsed = t - started;
      if (elapsed < QUIET_MS || t - drawn < EVERY_MS) return;
      const fraction = total > 0 ? Math.min(1, done / total) : 0;
      // Not worth showing for a command about to finish.
      if (!shown && fraction > 0 && elapsed / fraction < WORTH_MS) return;
      shown = true;
      drawn = t;
      ctx.stderr.write(`\r\u001b[2K${PROGRAM} ${command}: ${what} ${Math.floor(fraction * 100)}%`);
    },
    clear() {
      if (!shown) return;
      shown = false;
      drawn = -Infinity;
      ctx.stderr.write("\r\u001b[2K");
    },
  };
}

/** The progress label of one file among several: `reading usage.csv (2 of 3)`. */
export function fileStep(verb: string, name: string, index: number, count: number): string {
  return `${verb} ${printable(name)}${count > 1 ? ` (${index + 1} of ${count})` : ""}`;
}
