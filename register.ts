// The preload: `node --import mistral-usage-log/register app.js`.
import { configFromEnv } from "./src/config.js";
import { install } from "./src/install.js";

install(configFromEnv());
