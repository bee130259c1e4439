import type { Config } from "../config.js";
import { loggedModel, type UsageEvent } from "../record/usage-event.js";
import { sayConfigWarnings, type Reporter } from "../report.js";
import { CsvLog } from "./csv-file.js";
import { otlpConfigFromEnv } from "./otlp/config.js";
import { OtlpSink } from "./otlp/sink.js";
import type { UsageSink } from "./sink.js";

/**
 * The sinks a configuration asks for, in the order events reach them: the CSV log always, then
 * OpenTelemetry metrics when MISTRAL_USAGE_OTLP=1 (configured by the standard OTEL_* variables of
 * `env`). Shared by every entry point (the preload's `install()`, the proxy), so they all write the
 * same things. The configuration's problems are said once per process tree (sayConfigWarnings
 * records them in `env`).
 */
export function sinksFromConfig(config: Config, reporter: Reporter, env: Record<string, string | undefined> = process.env): UsageSink[] {
  const warn = (message: string): void => reporter.warn(message);
  const csv = new CsvLog(config.logPath, {
    warn,
    ...(config.verbose ? { onWritten: (rows, logPath) => printRows(reporter, rows, logPath) } : {}),
  });
  const otlp = otlpConfigFromEnv(env);
  sayConfigWarnings(otlp.warnings, warn, env);
  return otlp.config === undefined ? [csv] : [csv, new OtlpSink(otlp.config, { warn })];
}

/** MISTRAL_USAGE_VERBOSE: each row as the guide's hand-written logger prints it. */
function printRows(reporter: Reporter, rows: readonly UsageEvent[], logPath: string): void {
  for (const row of rows) {
    const { counts } = row;
    reporter.info(
      `Model: ${loggedModel(row)}, Prompt Tokens: ${counts.promptTokens}, Completion Tokens: ${counts.completionTokens}, Total Tokens: ${counts.totalTokens}`,
    );
    reporter.info(`Logged usage to ${logPath}`);
  }
}
