// The preload: `node --import mistral-usage-log/register app.js`.
import { configFromEnv } from "./src/config.js";
import { install } from "./src/install.js";
import { untappableRuntime } from "./src/runtime.js";

// Under Bun and Deno, install() prints one line and reads nothing more: not the whole configuration
// (Deno would ask permission for, or throw at, each variable read).
install(untappableRuntime() === undefined ? configFromEnv() : {});
