// Where the preload's time goes inside a real client, as opposed to a hot loop (pipeline.mjs):
// installs the preload from dist/ with every diagnostics-channel subscriber, the body-chunk handler
// (reached through the onData wrapper on Node 20/22), the CSV flush and the flush's two system calls
// wrapped in a wall-clock timer, and prints at exit the time each took per call (per `create`).
//
//   MISTRAL_USAGE_HOSTS=127.0.0.1:PORT node --import ./bench/inside-client.mjs bench/client.mjs \
//     --url http://127.0.0.1:PORT --api undici --mode json --concurrency 1 --calls 5000
//
// The timers add about 0.1 µs each. Use it instead of --import register.js, never both.
// INSIDE_CLIENT_DIST=DIR measures another build (say a copy of dist/ from before a change).
import diagnostics from "node:diagnostics_channel";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const distDir = process.env.INSIDE_CLIENT_DIST;
const dist = distDir === undefined ? new URL("../dist/", import.meta.url) : pathToFileURL(`${path.resolve(distDir)}/`);
const totals = new Map();
const now = () => Number(process.hrtime.bigint());
const timed = (name, fn) =>
  function (...args) {
    const start = now();
    try {
      return fn.apply(this, args);
    } finally {
      const entry = totals.get(name) ?? { nanos: 0, count: 0 };
      entry.nanos += now() - start;
      entry.count++;
      totals.set(name, entry);
    }
  };

const subscribe = diagnostics.subscribe;
diagnostics.subscribe = (name, subscriber) => subscribe(name, timed(`channel ${name}`, subscriber));
const { CsvLog } = await import(new URL("src/sink/csv-file.js", dist).href);
const { ObservedCall } = await import(new URL("src/record/observed-call.js", dist).href);
ObservedCall.prototype.responseData = timed("ObservedCall.responseData (every body chunk)", ObservedCall.prototype.responseData);
CsvLog.prototype.flush = timed("CsvLog flush (all of it)", CsvLog.prototype.flush);
// The sink takes node:fs from process.getBuiltinModule: the same object as this import.
fs.statSync = timed("  of which fs.statSync", fs.statSync);
fs.writeSync = timed("  of which fs.writeSync", fs.writeSync);
const { install } = await import(new URL("src/index.js", dist).href);
install();

process.on("exit", () => {
  const calls = totals.get("channel undici:request:create")?.count ?? 0;
  const lines = [...totals].map(
    ([name, { nanos, count }]) => `${(nanos / calls / 1000).toFixed(2).padStart(8)} µs  (${String(count).padStart(6)} times)  ${name}`,
  );
  process.stderr.write(`wall time per call inside the client, ${calls} calls (${process.version})\n${lines.join("\n")}\n`);
});
