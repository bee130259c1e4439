// Entry point for `node --import /path/to/checkout/register.js app.js`; the compiled preload is in dist/.
import "./dist/register.js";
