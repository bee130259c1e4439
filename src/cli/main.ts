#!/usr/bin/env node
/**
 * `mistral-usage`: the package's command. Dispatches to one file per subcommand; every
 * subcommand has --help, and exit codes follow EXIT in common.ts.
 */
import { readFileSync, realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { EXIT, EXIT_CODES_HELP, HelpRequested, PROGRAM, UsageError, write } from "./common.js";
import type { Command, Context } from "./common.js";
import { HEADER_LINE } from "../log/check.js";
import { mergeCommand } from "./merge.js";
import { proxyCommand } from "./proxy.js";
import { reportCommand } from "./report.js";
import { runCommand } from "./run.js";
import { validateCommand } from "./validate.js";

const COMMANDS: readonly Command[] = [reportCommand, validateCommand, mergeCommand, runCommand, proxyCommand];

const USAGES: Record<string, string> = {
  report: "report [FILE...]",
  validate: "validate [FILE...]",
  merge: "merge -o OUT FILE...",
  run: "run -- COMMAND [ARGS...]",
  proxy: "proxy [--listen HOST:PORT]",
};

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => (USAGES[c.name] ?? c.name).length));
  const lines = COMMANDS.map((c) => `  ${(USAGES[c.name] ?? c.name).padEnd(width)}  ${c.summary}`);
  return `Usage: ${PROGRAM} <command> [options]

Reads, checks and combines the Mistral API usage log (mistral_usage_log.csv:
${HEADER_LINE}) that the
mistral-usage-log preload writes, runs programs in any language with their
Mistral calls logged, and serves a logging proxy.

Commands:
${lines.join("\n")}

Run '${PROGRAM} <command> --help' for the options of a command.
The command is installed as both mistral-usage and mistral-usage-log. Where
the package is not installed, run npx mistral-usage-log <command>: for the
shorter name, npx would fetch an unrelated package.

Options:
  -h, --help     show this help
  -v, --version  print the version

${EXIT_CODES_HELP}
  run exits with the status of the command it ran (see run --help)
`;
}

/** This package's version, from the package.json above this file (src/cli or dist/src/cli). */
export function version(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "mistral-usage-log" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // No package.json here: keep climbing.
    }
    const parent = path.dirname(dir);
    if (parent === dir) return "unknown";
    dir = parent;
  }
}

/** Runs the command line `argv` (without node and the script) and returns the exit code. */
export async function main(argv: readonly string[], ctx: Context): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    ctx.stderr.write(mainHelp());
    return EXIT.usage;
  }
  if (first === "-h" || first === "--help") {
    await write(ctx.stdout, mainHelp());
    return EXIT.ok;
  }
  if (first === "-v" || first === "--version") {
    await write(ctx.stdout, `${version()}\n`);
    return EXIT.ok;
  }
  let name = first;
  let args = rest;
  if (first === "help") {
    if (rest[0] === undefined) {
      await write(ctx.stdout, mainHelp());
      return EXIT.ok;
    }
    name = rest[0];
    args = ["--help"];
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (command === undefined) {
      const guess = suggest(name);
      throw new UsageError(`unknown command ${JSON.stringify(name)}${guess === undefined ? "" : ` (did you mean ${guess}?)`}`);
    }
    return await command.run([...args], ctx);
  } catch (err) {
    if (err instanceof HelpRequested && command !== undefined) {
      await write(ctx.stdout, command.help);
      return EXIT.ok;
    }
    if (err instanceof UsageError) {
      const where = err.command === undefined ? PROGRAM : `${PROGRAM} ${err.command}`;
      ctx.stderr.write(`${where}: ${err.message}\nRun '${where} --help' for usage.\n`);
      return EXIT.usage;
    }
    ctx.stderr.write(`${PROGRAM}: error: ${(err as Error)?.message ?? String(err)}\n`);
    return EXIT.problems;
  }
}

function suggest(name: string): string | undefined {
  const lower = name.toLowerCase();
  return COMMANDS.map((c) => c.name).find((c) => c.startsWith(lower) || lower.startsWith(c) || distance(c, lower) <= 2);
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] as number;
}

/** True when this file is the program being run (not imported by a test); npm links bins as symlinks. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `| head` closing stdout early is not an error worth a stack trace.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw err;
  });
  const ctx: Context = { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() };
  main(process.argv.slice(2), ctx).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${PROGRAM}: error: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = EXIT.problems;
    },
  );
}
