/**
 * What every subcommand shares: exit codes, option parsing with clear errors, output with
 * backpressure, and the default log path.
 */
import { parseArgs } from "node:util";
import type { ParseArgsConfig } from "node:util";
import { once } from "node:events";
import path from "node:path";
import { readFile } from "node:fs/promises";
import { logFileFromEnv } from "../config.js";
import { ANSI_STYLE, NO_STYLE, useColor } from "./format.js";
import type { Style } from "./format.js";
import { PriceBook, PriceTableError, validatePriceTable } from "./prices.js";
import { BUILTIN_PRICES } from "./prices-data.js";

export const PROGRAM = "mistral-usage";

export const EXIT = {
  /** Success; validate: the files are valid (warnings allowed). */
  ok: 0,
  /** The data has problems: a file is missing, unreadable or not a usage log, or has invalid rows. */
  problems: 1,
  /** The command line is wrong: unknown command or option, bad value, unusable --prices file. */
  usage: 2,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0  success (validate: every file is valid; warnings do not count)
  1  problems in the data: a file is missing, unreadable or not a usage log,
     or has invalid rows (report and merge still use the valid rows)
  2  usage error: unknown command or option, bad option value, a --prices
     file that cannot be read or has the wrong shape, merge -o naming an input`;

/** A mistake on the command line: printed with a pointer to --help, exit 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

/** The environment a command runs in (process's own in main.ts; swappable in tests). */
export interface Context {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly help: string;
  run(args: string[], ctx: Context): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `--help` / `-h` was given: main prints the command's help and exits 0. */
export class HelpRequested extends Error {}

/**
 * `node:util` parseArgs, strict, with errors turned into one-line UsageErrors that name the
 * subcommand ("unknown option --foo"), and `--help` / `-h` thrown as HelpRequested once the
 * options parse.
 */
export interface ParsedOptions {
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
  readonly positionals: string[];
}

export function parseOptions(command: string, args: string[], options: Options, allowPositionals = true): ParsedOptions {
  let parsed: ParsedOptions;
  try {
    parsed = parseArgs({ args, options: { help: { type: "boolean", short: "h" }, ...options }, allowPositionals, strict: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const option = /'([^']+)'/.exec(e.message)?.[1];
    switch (e.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown option ${option ?? e.message}`, command);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
        throw new UsageError(`unexpected argument ${option ?? ""}`.trim(), command);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
        throw new UsageError(e.message.replace(/^Option /, "option ").replace(/\.$/, ""), command);
      default:
        throw new UsageError(e.message, command);
    }
  }
  if (parsed.values["help"] === true) throw new HelpRequested();
  return parsed;
}

/** Writes text, waiting when the stream's buffer is full (a million merged rows must not pile up in memory). */
export async function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (text === "") return;
  if (!stream.write(text)) await once(stream, "drain");
}

/** Prints `mistral-usage: MESSAGE` on stderr. */
export function warn(ctx: Context, message: string): void {
  ctx.stderr.write(`${PROGRAM}: ${message}\n`);
}

export function styleFor(ctx: Context): Style {
  return useColor(ctx.stdout.isTTY, ctx.env) ? ANSI_STYLE : NO_STYLE;
}

/** The log the preload writes in this environment: `$MISTRAL_USAGE_LOG`, else `mistral_usage_log.csv`. */
export function defaultLogFile(ctx: Context): string {
  return logFileFromEnv(ctx.env).file;
}

/** Files as the user named them, resolved against the working directory for reading. */
export function resolveFiles(ctx: Context, files: readonly string[]): { name: string; path: string }[] {
  return files.map((name) => ({ name, path: path.resolve(ctx.cwd, name) }));
}

/** The built-in prices, with `--prices FILE` on top when given. Bad files are usage errors. */
export async function loadPrices(ctx: Context, command: string, file: string | undefined): Promise<PriceBook> {
  if (file === undefined) return new PriceBook(BUILTIN_PRICES);
  let text: string;
  try {
    text = await readFile(path.resolve(ctx.cwd, file), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (err as Error).message;
    throw new UsageError(`--prices ${file}: ${why}`, command);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--prices ${file}: not valid JSON (${(err as Error).message})`, command);
  }
  try {
    return new PriceBook(BUILTIN_PRICES, validatePriceTable(json, `--prices ${file}`));
  } catch (err) {
    if (err instanceof PriceTableError) throw new UsageError(err.message, command);
    throw err;
  }
}

/** How many problems per file are printed before the rest are only counted. */
export const DEFAULT_MAX_PROBLEMS = 50;

/** Parses a non-negative integer option value. */
export function parseCountOption(command: string, name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} needs a whole number, got ${JSON.stringify(value)}`, command);
  return Number(value);
}
