import { configFromEnv, ENV, type Config } from "./config.js";
import { HostMatcher, matchRequest, pathWithoutQuery } from "./endpoints.js";
import { ObservedCall, type CallDeps, type Limits, type UsageRecord } from "./record/observed-call.js";
import { stderrReporter, type Reporter } from "./report.js";
import { CsvLog } from "./sink/csv-file.js";
import type { ObserverFactory } from "./taps/exchange.js";
import { tapNodeHttp } from "./taps/node-http.js";
import { tapUndici } from "./taps/undici-diagnostics.js";

export type Uninstall = () => void;

export interface InstallOptions extends Partial<Config> {
  /** Problems found while reading the configuration, printed once at install. */
  readonly warnings?: readonly string[];
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 32 * 1024 * 1024,
  maxEventBytes: 8 * 1024 * 1024,
  maxRequestBytes: 1024 * 1024,
};

// One installation per thread (each worker has its own globals), even when the preload is loaded
// twice, say once by --import and once through NODE_OPTIONS, or from two copies of the package:
// two observers would log every call twice.
const INSTALLED = Symbol.for("mistral-usage-log.installed");
type Marked = typeof globalThis & { [INSTALLED]?: true };

/**
 * Starts logging every usage-bearing Mistral call made through undici (built-in fetch included)
 * or node:http/node:https to the CSV log. Options not given come from the environment. Returns a function that stops
 * logging, writes what is pending and restores everything that was changed.
 */
export function install(options: InstallOptions = {}): Uninstall {
  const global = globalThis as Marked;
  const given = withoutUndefined(options);
  // register.ts passes a whole configuration; the environment is read only for what is missing.
  const config: Config = isWholeConfig(given) ? given : { ...configFromEnv(), ...given };
  const reporter = stderrReporter();
  for (const warning of options.warnings ?? []) reporter.warn(warning);
  if (config.disabled || global[INSTALLED]) return () => {};
  global[INSTALLED] = true;

  // Children and workers inherit the resolved absolute path, so they write to the same file
  // whatever their working directory.
  const previousLogEnv = process.env[ENV.log];
  process.env[ENV.log] = config.logPath;

  const log = new CsvLog(config.logPath, {
    warn: (message) => reporter.warn(message),
    ...(config.verbose ? { onWritten: (rows, logPath) => printRows(reporter, rows, logPath) } : {}),
  });
  const openStreams = new Set<ObservedCall>();
  const deps: CallDeps = {
    record: (usage) => log.append(usage),
    warn: (message) => reporter.warn(message),
    limits: DEFAULT_LIMITS,
    openStreams,
  };
  const hosts = new HostMatcher(config.extraHosts);
  const reportInternalError = (error: unknown) =>
    reporter.warn(`internal error, please report it: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);

  const observe: ObserverFactory = (origin, path, method) => {
    const endpoint = matchRequest(hosts, origin, path, method);
    if (endpoint === undefined) return undefined;
    return new ObservedCall(endpoint, () => `${method} ${origin}${pathWithoutQuery(path)}`, deps);
  };
  // Two separate HTTP stacks, so no call is seen by both: undici (fetch) and node:http.
  const untapUndici = tapUndici(observe, reportInternalError);
  const untapNodeHttp = tapNodeHttp(observe, reportInternalError);

  const onExit = (): void => {
    try {
      for (const call of openStreams) call.finishAtExit();
      log.flush();
    } catch (error) {
      reportInternalError(error);
    }
  };
  process.on("exit", onExit);

  let installed = true;
  return () => {
    if (!installed) return;
    installed = false;
    untapUndici();
    untapNodeHttp();
    process.off("exit", onExit);
    log.close();
    if (previousLogEnv === undefined) delete process.env[ENV.log];
    else process.env[ENV.log] = previousLogEnv;
    delete global[INSTALLED];
  };
}

function printRows(reporter: Reporter, rows: readonly UsageRecord[], logPath: string): void {
  for (const { model, counts } of rows) {
    reporter.info(
      `Model: ${model}, Prompt Tokens: ${counts.promptTokens}, Completion Tokens: ${counts.completionTokens}, Total Tokens: ${counts.totalTokens}`,
    );
    reporter.info(`Logged usage to ${logPath}`);
  }
}

function isWholeConfig(options: Partial<Config>): options is Config {
  return options.logPath !== undefined && options.extraHosts !== undefined && options.verbose !== undefined && options.disabled !== undefined;
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
