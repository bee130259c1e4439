import { configFromEnv, ENV, type Config } from "./config.js";
import { createPipeline } from "./pipeline.js";
import { internalErrorReporter, stderrReporter } from "./report.js";
import { sinksFromConfig } from "./sink/from-config.js";
import { TAPS } from "./taps/index.js";
import { leaveToRunProxy, parseProxyAddress, RUN_PROXY_ENV } from "./taps/via-run-proxy.js";
import { untappableRuntime, untappableRuntimeMessage } from "./runtime.js";

export { DEFAULT_LIMITS } from "./pipeline.js";

export type Uninstall = () => void;

export interface InstallOptions extends Partial<Config> {
  /** Problems found while reading the configuration, printed once at install. */
  readonly warnings?: readonly string[];
}

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
  const warn = (message: string): void => reporter.warn(message);
  for (const warning of options.warnings ?? []) warn(warning);
  if (config.disabled || global[INSTALLED]) return () => {};
  const runtime = untappableRuntime();
  if (runtime !== undefined) {
    // Under `mistral-usage run` the proxy logs these calls: nothing to say.
    if (process.env[RUN_PROXY_ENV] === undefined) warn(untappableRuntimeMessage(runtime));
    return () => {};
  }
  global[INSTALLED] = true;

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

function isWholeConfig(options: Partial<Config>): options is Config {
  return options.logPath !== undefined && options.extraHosts !== undefined && options.verbose !== undefined && options.disabled !== undefined;
}

function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
