/** `mistral-usage run -- COMMAND [ARGS...]`: run a program with the preload, then say what it logged. */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { constants as osConstants } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { configFromEnv, ENV } from "../config.js";
import { stderrReporter } from "../report.js";
import { EXIT, PROGRAM, UsageError, loadPrices, parseOptions, warn } from "./common.js";
import type { Command } from "./common.js";
import { formatInt, formatUsd, printable } from "./format.js";
import { readLog } from "./log-reader.js";
import { UsageAggregator } from "./aggregate.js";
import type { PriceBook } from "./prices.js";

const HELP = `Usage: ${PROGRAM} run [options] [--] COMMAND [ARGS...]

Runs COMMAND, in any language, and logs every Mistral API call it makes, then
prints one line on stderr: how many calls were logged, with tokens and
estimated cost. Everything else passes through: stdin, stdout, stderr, SIGINT,
SIGTERM and SIGHUP (forwarded to COMMAND), and the exit status.

  ${PROGRAM} run -- python app.py
  ${PROGRAM} run -- node app.js
  ${PROGRAM} run -- npm start
  MISTRAL_USAGE_LOG=logs/usage.csv ${PROGRAM} run -- ./server --port 3000

How: for COMMAND's lifetime a proxy listens on 127.0.0.1 and COMMAND gets
  HTTPS_PROXY, https_proxy, HTTP_PROXY, http_proxy   the proxy, with a per-run
                                                     password (others get 407)
  SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE  one CA bundle: the system's
                        roots, the files these variables named, the run's CA
  NODE_EXTRA_CA_CERTS, DENO_CERT   the files they named plus the run's CA
  NODE_USE_ENV_PROXY=1  Node 22.21+/24.5+/26 fetch and https use the proxy
  NO_PROXY, no_proxy    without entries that would bypass Mistral hosts
  NODE_OPTIONS          plus the preload (by absolute path, so npm scripts,
                        child processes and workers load it too)
Only connections to mistral.ai, *.mistral.ai and MISTRAL_USAGE_HOSTS are
decrypted (with a CA made in memory for this run, limited to those names,
whose key is never written); everything else is tunnelled untouched. A Node
call seen by both the preload and the proxy is logged once, by the proxy.
Node 20's fetch ignores proxy variables: it goes straight to the host the
app named (--upstream does not apply to it) and the preload logs it.
Clients that ignore proxy variables (aiohttp without trust_env, Java) are
not seen: use ${PROGRAM} proxy and point their base URL at it.

Options (before COMMAND):
  --upstream URL   send intercepted Mistral calls to URL (a gateway, a test
                   server) instead of the host the app named;
                   default $MISTRAL_USAGE_UPSTREAM, else that host
  -q, --quiet      no summary line at the end
  --prices FILE    price table for the cost in the summary (see report --help)
  -h, --help       show this help

The proxy's own connections verify certificates (system roots plus
NODE_EXTRA_CA_CERTS) and go through the HTTPS_PROXY you had set, if any.

The log is $MISTRAL_USAGE_LOG, else ./mistral_usage_log.csv; COMMAND gets its
absolute path in MISTRAL_USAGE_LOG. The summary counts the rows appended to it
while COMMAND ran (rows another program appends meanwhile count too). With
MISTRAL_USAGE_DISABLE=1 no proxy is started and nothing is logged.

Exit status: COMMAND's. If COMMAND is killed by a signal, ${PROGRAM} kills
itself with the same signal. 2: usage error (no COMMAND, unknown option);
126: COMMAND cannot be executed; 127: COMMAND not found; 1: ${PROGRAM} itself
failed (the preload is missing: run npm run build in a checkout).
`;

/** Signals passed on to the child: the terminal's and a supervisor's ways of asking it to stop. */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export const runCommand: Command = {
  name: "run",
  summary: "run any command and log its Mistral calls",
  help: HELP,
  async run(args, ctx) {
    const { own, command } = splitCommand(args);
    const { values } = parseOptions("run", own, { quiet: { type: "boolean", short: "q", default: false }, prices: { type: "string" }, upstream: { type: "string" } }, false);
    const [file, ...rest] = command;
    if (file === undefined || file === "") throw new UsageError("run needs a COMMAND to run, e.g. mistral-usage run -- node app.js", "run");
    const prices = await loadPrices(ctx, "run", values.prices as string | undefined);
    const preload = preloadPath();
    if (!existsSync(preload)) {
      warn(ctx, `the preload ${preload} is missing (in a checkout, run npm run build)`);
      return EXIT.problems;
    }
    const redirect = upstreamUrl(values.upstream as string | undefined, ctx.env);
    const config = configFromEnv(ctx.env, ctx.cwd);
    // Loaded only here: report and validate never pay for the proxy's code.
    const session = config.disabled ? undefined : await (await import("../proxy/session.js")).startRunProxy({ config, env: ctx.env, reporter: stderrReporter(), ...(redirect === undefined ? {} : { redirect }) });
    const env: Record<string, string | undefined> = {
      ...(session?.env ?? ctx.env),
      NODE_OPTIONS: withPreload(ctx.env["NODE_OPTIONS"], pathToFileURL(preload).href),
      [ENV.log]: config.logPath,
    };
    const before = await logPosition(config.logPath);
    const outcome = await spawnForwarding(file, rest, { cwd: ctx.cwd, env });
    // Rows of exchanges that were still in flight when COMMAND ended are written before we go on.
    await session?.stop();
    if (outcome.kind === "error") {
      warn(ctx, `${printable(file)}: ${outcome.message}`);
      return outcome.code;
    }
    if (values.quiet !== true) {
      try {
        warn(ctx, await summaryLine(config.logPath, before, prices, config.disabled));
      } catch (err) {
        warn(ctx, `could not read ${printable(config.logPath)}: ${(err as Error).message}`);
      }
    }
    if (outcome.signal !== null) return reraise(outcome.signal);
    return outcome.code ?? EXIT.problems;
  },
};

/**
 * Our options come before COMMAND: everything up to `--`, or up to the first argument that is
 * not an option. The command's own options (`node --inspect app.js`) are never parsed as ours.
 */
export function splitCommand(args: readonly string[]): { own: string[]; command: string[] } {
  const own: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") return { own, command: args.slice(i + 1) };
    if (!arg.startsWith("-") || arg === "-") return { own, command: args.slice(i) };
    own.push(arg);
    // An option that takes a value consumes the next argument.
    if ((arg === "--prices" || arg === "--upstream") && i + 1 < args.length) own.push(args[++i] as string);
  }
  return { own, command: [] };
}

/** `--upstream URL`, else $MISTRAL_USAGE_UPSTREAM: an http(s) origin, optionally with a path prefix. */
export function upstreamUrl(option: string | undefined, env: Readonly<Record<string, string | undefined>>, command = "run"): URL | undefined {
  const fromEnv = env[UPSTREAM_ENV]?.trim();
  const raw = option ?? (fromEnv === "" ? undefined : fromEnv);
  if (raw === undefined) return undefined;
  const where = option === undefined ? UPSTREAM_ENV : "--upstream";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${where} ${JSON.stringify(raw)} is not a URL (expected e.g. https://gateway.example.com)`, command);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UsageError(`${where} must be an http:// or https:// URL, got ${JSON.stringify(raw)}`, command);
  if (url.search !== "" || url.hash !== "" || url.username !== "") throw new UsageError(`${where} takes an origin and an optional path, without query, fragment or credentials: ${JSON.stringify(raw)}`, command);
  return url;
}

export const UPSTREAM_ENV = "MISTRAL_USAGE_UPSTREAM";

/** The compiled preload of this very package: dist/register.js next to dist/src/cli/ (or register.js beside src/ in a checkout run through tsx). */
export function preloadPath(): string {
  return fileURLToPath(new URL("../../register.js", import.meta.url));
}

/**
 * NODE_OPTIONS with `--import=SPECIFIER` appended, keeping what was there. Node splits
 * NODE_OPTIONS at spaces unless they are inside double quotes, where `\` escapes `"` and `\`.
 */
export function withPreload(existing: string | undefined, specifier: string): string {
  const option = quoteNodeOption(`--import=${specifier}`);
  const current = existing?.trim() ?? "";
  return current === "" ? option : `${current} ${option}`;
}

export function quoteNodeOption(arg: string): string {
  return /[\s"\\]/.test(arg) ? `"${arg.replace(/[\\"]/g, (c) => `\\${c}`)}"` : arg;
}

interface Position {
  readonly size: number;
  readonly id?: string;
}

async function logPosition(file: string): Promise<Position> {
  const s = await stat(file).catch(() => undefined);
  return s === undefined ? { size: 0 } : { size: s.size, id: `${s.dev}:${s.ino}` };
}

/** "3 calls logged to FILE (1,234 tokens, est. $0.0012)", counting the rows added since `before`. */
async function summaryLine(file: string, before: Position, prices: PriceBook, disabled: boolean): Promise<string> {
  if (disabled) return `no calls logged: ${ENV.disable} is set`;
  const now = await logPosition(file);
  if (now.id === undefined) return formatSummary(file, 0, 0, 0, new Map());
  // A log that was replaced or truncated meanwhile is counted from its start.
  const start = now.id === before.id && now.size >= before.size ? before.size : 0;
  const usage = new UsageAggregator("model");
  await readLog(file, { row: (row) => usage.add(row) }, { start });
  const { total, unpriced } = usage.summarize(prices);
  return formatSummary(file, total.calls, total.totalTokens, total.costUsd ?? 0, new Map(unpriced.map((u) => [u.model, u.calls])));
}

/** The summary line's text. Pure. */
export function formatSummary(file: string, calls: number, tokens: number, cost: number, unpriced: ReadonlyMap<string, number>): string {
  if (calls === 0) return `no calls logged to ${printable(file)}`;
  const pricedCalls = calls - [...unpriced.values()].reduce((a, b) => a + b, 0);
  let money = pricedCalls > 0 ? `est. ${formatUsd(cost)}` : "est. cost n/a";
  if (unpriced.size > 0 && pricedCalls > 0) {
    const n = calls - pricedCalls;
    money += ` + n/a for ${formatInt(n)} call${n === 1 ? "" : "s"} to ${[...unpriced.keys()].map(printable).join(", ")}`;
  } else if (unpriced.size > 0) {
    money += ` (no price for ${[...unpriced.keys()].map(printable).join(", ")})`;
  }
  return `${formatInt(calls)} call${calls === 1 ? "" : "s"} logged to ${printable(file)} (${formatInt(tokens)} tokens, ${money})`;
}

type Outcome = { kind: "exit"; code: number | null; signal: NodeJS.Signals | null } | { kind: "error"; code: number; message: string };

/** Spawns with inherited stdio, forwarding our stop signals to the child until it ends. */
function spawnForwarding(file: string, args: string[], options: { cwd: string; env: Record<string, string | undefined> }): Promise<Outcome> {
  return new Promise((resolve) => {
    let child: ChildProcess | undefined;
    // Listening before the spawn leaves no moment in which a signal would kill us and orphan the
    // child. (Signal events are emitted from the event loop, so `child` is set by then.)
    const forward = (signal: NodeJS.Signals): void => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill(signal);
    };
    for (const s of FORWARDED) process.on(s, forward);
    const done = (outcome: Outcome): void => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve(outcome);
    };
    child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: "inherit" });
    child.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") done({ kind: "error", code: 127, message: "command not found" });
      else if (err.code === "EACCES") done({ kind: "error", code: 126, message: "permission denied (not executable)" });
      else done({ kind: "error", code: EXIT.problems, message: `cannot run: ${err.message}` });
    });
    child.once("exit", (code, signal) => done({ kind: "exit", code, signal }));
  });
}

/**
 * Ends this process the way the child ended: killed by the same signal, so that a shell or
 * supervisor sees what really happened. If the signal is ignored here, 128 + its number.
 */
function reraise(signal: NodeJS.Signals): number {
  const code = 128 + (osConstants.signals[signal] ?? 0);
  process.exitCode = code;
  try {
    process.kill(process.pid, signal);
  } catch {
    // Not a signal this platform can send to itself.
  }
  return code;
}

