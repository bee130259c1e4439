/** `mistral-usage validate [FILE...]`: is each file in the mandatory format? */
import { DEFAULT_MAX_PROBLEMS, EXIT, EXIT_CODES_HELP, PROGRAM, defaultLogFile, parseCountOption, parseOptions, resolveFiles, styleFor, write } from "./common.js";
import type { Command } from "./common.js";
import { formatInt, printable } from "./format.js";
import type { Style } from "./format.js";
import { HEADER_LINE } from "../log/check.js";
import { readLog } from "./log-reader.js";
import { fileStep, progressFor } from "./progress.js";
import type { FileResult, Problem } from "./log-reader.js";

const HELP = `Usage: ${PROGRAM} validate [options] [FILE...]

Checks each FILE, line by line, against the mandatory format of the usage log:
  - the first line is exactly
    ${HEADER_LINE}
  - every row has these 5 fields, in this order (RFC 4180 CSV)
  - TimestampUTC is ISO 8601 in UTC, e.g. 2026-11-24T10:30:01.123456+00:00
  - Model is not empty
  - PromptTokens, CompletionTokens and TotalTokens are non-negative integers
A TotalTokens other than PromptTokens + CompletionTokens is a warning, not an
error: the API reports such totals for moderation and transcription calls.

Prints each problem as FILE:LINE: error|warning: MESSAGE, then a one-line
verdict per file. FILE defaults to $MISTRAL_USAGE_LOG, else
mistral_usage_log.csv.

Options:
  --max-problems N  print at most N problems per file (default ${DEFAULT_MAX_PROBLEMS}, 0 = all);
                    the verdict counts them all
  -h, --help        show this help

${EXIT_CODES_HELP}
`;

export const validateCommand: Command = {
  name: "validate",
  summary: "check logs against the mandatory format",
  help: HELP,
  async run(args, ctx) {
    const { values, positionals } = parseOptions("validate", args, { "max-problems": { type: "string" } });
    const maxProblems = parseCountOption("validate", "max-problems", values["max-problems"] as string | undefined, DEFAULT_MAX_PROBLEMS);
    const files = resolveFiles(ctx, positionals.length > 0 ? positionals : [defaultLogFile(ctx)]);
    const style = styleFor(ctx);
    let failed = false;
    const progress = progressFor(ctx, "validate");
    for (const [index, { name, path }] of files.entries()) {
      const pending: Problem[] = [];
      let shown = 0;
      let hidden = 0;
      const flush = (): void => {
        if (pending.length === 0) return;
        progress.clear();
        ctx.stdout.write(pending.map((p) => formatProblem(name, p, style)).join(""));
        pending.length = 0;
      };
      const result = await readLog(path, {
        problem(p) {
          if (maxProblems === 0 || shown < maxProblems) {
            shown++;
            pending.push(p);
            // Print in batches, so a file with many problems never holds them all.
            if (pending.length >= 256) flush();
          } else {
            hidden++;
          }
        },
      }, { progress: (done, size) => progress.update(fileStep("checking", name, index, files.length), done, size) });
      flush();
      progress.clear();
      if (hidden > 0) await write(ctx.stdout, `${name}: ${formatInt(hidden)} more problem${hidden === 1 ? "" : "s"} not shown (--max-problems 0 shows all)\n`);
      if (result.errors > 0) failed = true;
      await write(ctx.stdout, `${verdict(name, result, style)}\n`);
    }
    return failed ? EXIT.problems : EXIT.ok;
  },
};

/** `FILE:LINE: error: MESSAGE` (no `:LINE` for problems with the whole file). */
export function formatProblem(name: string, p: Problem, style: Style): string {
  const where = p.line > 0 ? `${name}:${p.line}` : name;
  const severity = p.severity === "error" ? style.red("error") : style.yellow("warning");
  return `${printable(where)}: ${severity}: ${printable(p.message)}\n`;
}

/** The one-line verdict for a file. */
export function verdict(name: string, r: FileResult, style: Style): string {
  const warnings = r.warnings > 0 ? `, ${formatInt(r.warnings)} warning${r.warnings === 1 ? "" : "s"}` : "";
  const shownName = printable(name);
  if (r.fatal !== undefined) return `${shownName}: ${style.red(style.bold("NOT VALID"))} (stopped at the first problem)`;
  const rows = `${formatInt(r.rows + r.invalidRows)} row${r.rows + r.invalidRows === 1 ? "" : "s"}`;
  if (r.errors === 0) return `${shownName}: ${style.green(style.bold("valid"))} (${rows}${warnings})`;
  return `${shownName}: ${style.red(style.bold("NOT VALID"))} (${rows}, ${formatInt(r.invalidRows)} invalid; ${formatInt(r.errors)} error${r.errors === 1 ? "" : "s"}${warnings})`;
}
