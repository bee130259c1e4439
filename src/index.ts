export { install, DEFAULT_LIMITS, type InstallOptions, type Uninstall } from "./install.js";
export { createPipeline, type Pipeline, type PipelineOptions } from "./pipeline.js";
export { configFromEnv, DEFAULT_LOG_FILE, ENV, type Config, type EnvConfig } from "./config.js";
export { HEADER_LINE, HEADER_FIELDS } from "./log/format.js";
export { CsvLog, type CsvLogOptions } from "./sink/csv-file.js";
export type { UsageSink } from "./sink/sink.js";
export type { UsageEvent, CallUsage } from "./record/usage-event.js";
export type { ExchangeObserver, ObserverFactory, ResponseHead } from "./taps/exchange.js";
