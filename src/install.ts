import path from "node:path";
import { configFromEnv, ENV, type Config } from "./config.js";
import { createPipeline } from "./pipeline.js";
import { internalErrorReporter, sayConfigWarnings, stderrReporter } from "./report.js";
import { sinksFromConfig } from "./sink/from-config.js";
import { TAPS } from "./taps/index.js";
import { leaveToRunProxy, parseProxyAddress, RUN_PROXY_ENV } from "./taps/via-run-proxy.js";
import { envWithoutPrompt, untappableRuntime, untappableRuntimeMessage } from "./runtime.js";

export { DEFAULT_LIMITS } from "./pipeline.js";

export type Uninstall = () => void;

export interface InstallOptions extends Partial<Config> {
  /** Problems found while reading the configuration, printed once at install. */
  readonly warnings?: readonly string[];
}

// One installation per thread (each worker has its own globals), even when the preload is loaded
// twice, say once by --import and once through NODE_OPTIONS, or from two copies of the package:
// two observers would log every call twice.
// The marker holds the active configuration, so that a later install() with other options can say
// that they are ignored (an older copy of the package set `true`).
const INSTALLED = Symbol.for("mistral-usage-log.installed");
interface Active {
  readonly config: Config;
  /** The "ignored" warnings already printed: the same call repeated says it once. */
  readonly warned: Set<string>;
}
// Set once the untappable-runtime line was printed in this thread: it is said once.
const UNTAPPABLE_SAID = Symbol.for("mistral-usage-log.untappable-said");
type Marked = typeof globalThis & { [INSTALLED]?: Active | true; [UNTAPPABLE_SAID]?: true };

/**
 * Starts logging every usage-bearing Mistral call made through undici (built-in fetch included)
 * or node:http/node:https to the CSV log. Options not given come from the environment. Returns a function that stops
 * logging, writes what is pending and restores everything that was changed.
 */
export function install(options: InstallOptions = {}): Uninstall {
  const global = globalThis as Marked;
  const runtime = untappableRuntime();
  if (runtime !== undefined) {
    // Nothing here could be used, so nothing else is read (Deno asks permission for each variable).
    // Under `mistral-usage run` the proxy logs these calls, and a disabled preload has nothing to say.
    const disabled = options.disabled ?? configFromEnv({ [ENV.disable]: envWithoutPrompt(ENV.disable) }, "/").disabled;
    if (!disabled && envWithoutPrompt(RUN_PROXY_ENV) === undefined && global[UNTAPPABLE_SAID] !== true) {
      global[UNTAPPABLE_SAID] = true;
      stderrReporter().warn(untappableRuntimeMessage(runtime));
    }
    return () => {};
  }
  const given: Partial<Config> = withoutUndefined(options);
  // A relative logPath given in code is resolved here, once, as MISTRAL_USAGE_LOG is: children and
  // workers must get the same absolute file.
  if (given.logPath !== undefined) Object.assign(given, { logPath: path.resolve(given.logPath) });
  // register.ts passes a whole configuration; the environment is read only for what is missing.
  const config: Config = isWholeConfig(given) ? given : { ...configFromEnv(), ...given };
  const reporter = stderrReporter();
  const warn = (message: string): void => reporter.warn(message);
  // Once per process tree: workers and child processes inherit the list of what was said.
  sayConfigWarnings(options.warnings ?? [], warn, process.env);
  if (config.disabled) return () => {};
  const active = global[INSTALLED];
  if (active !== undefined) {
    const ignored = ignoredOptions(given, active === true ? undefined : active.config);
    if (ignored !== undefined && (active === true || !active.warned.has(ignored))) {
      if (active !== true) active.warned.add(ignored);
      warn(ignored);
    }
    return () => {};
  }
  global[INSTALLED] = { config, warned: new Set() };

  // Children and workers inherit the resolved absolute path, so they write to the same file
  // whatever their working directory.
  const previousLogEnv = process.env[ENV.log];
  process.env[ENV.log] = config.logPath;

  const pipeline = createPipeline({ sinks: sinksFromConfig(config, reporter), extraHosts: config.extraHosts, warn });
  const reportInternalError = internalErrorReporter(warn);
  // Under `mistral-usage run`, calls sent through the run's proxy are the proxy's to record.
  const runProxy = parseProxyAddress(process.env[RUN_PROXY_ENV]);
  const leave = runProxy === undefined ? undefined : leaveToRunProxy(pipeline.observe, runProxy, reportInternalError);
  const untaps = TAPS.map((tap) => tap(leave?.observe ?? pipeline.observe, reportInternalError));
  if (leave !== undefined) untaps.push(leave.attach());

  const onExit = (): void => pipeline.close();
  process.on("exit", onExit);

  let installed = true;
  return () => {
    if (!installed) return;
    installed = false;
    for (const untap of untaps) untap();
    process.off("exit", onExit);
    pipeline.close();
    if (previousLogEnv === undefined) delete process.env[ENV.log];
    else process.env[ENV.log] = previousLogEnv;
    delete global[INSTALLED];
  };
}

/**
 * What a second install() in the same thread asked for and does not get, or undefined when it asked
 * for nothing different (the preload loaded twice passes the same configuration: no warning).
 */
function ignoredOptions(given: Partial<Config>, active: Config | undefined): string | undefined {
  const differing: string[] = [];
  if (given.logPath !== undefined && (active === undefined || given.logPath !== active.logPath)) differing.push(`logPath ${JSON.stringify(given.logPath)}`);
  if (given.extraHosts !== undefined && (active === undefined || given.extraHosts.join(",") !== active.extraHosts.join(","))) {
    differing.push(`extraHosts ${JSON.stringify(given.extraHosts)}`);
  }
  if (given.verbose !== undefined && (active === undefined || given.verbose !== active.verbose)) differing.push(`verbose ${given.verbose}`);
  if (differing.length === 0) return undefined;
  const where = active === undefined ? "" : ` (usage goes to ${active.logPath})`;
  return `install() was called while mistral-usage-log is already active in this thread (the preload?), so ${differing.join(", ")} ${differing.length === 1 ? "is" : "are"} ignored${where}`;
}

function isWholeConfig(options: Partial<Config>): options is Config {
  return options.logPath !== undefined && options.extraHosts !== undefined && options.verbose !== undefined && options.disabled !== undefined;
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
