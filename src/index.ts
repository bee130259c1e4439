export { install, DEFAULT_LIMITS, type InstallOptions, type Uninstall } from "./install.js";
export { configFromEnv, DEFAULT_LOG_FILE, ENV, type Config, type EnvConfig } from "./config.js";
export { HEADER_LINE, HEADER_FIELDS } from "./sink/csv-row.js";
