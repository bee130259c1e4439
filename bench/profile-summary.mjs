// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by file, and the
// total (inclusive) time of every stack that passes through this package's code or the peer's.
//   node bench/profile-summary.mjs FILE.cpuprofile [--top 25]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "25" } } });
const profile = JSON.parse(readFileSync(positionals[0], "utf8"));
const top = Number(values.top);

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

// Sample counts weighted by the time deltas.
const selfMicros = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...selfMicros.values()].reduce((a, b) => a + b, 0);

const short = (url) => {
  const path = url.replace(/^file:\/\//, "");
  return path.includes("/node_modules/") ? path.replace(/^.*\/node_modules\//, "npm:") : path.replace(/^.*\/(dist|bench)\//, "$1/");
};
const label = (node) => `${node.callFrame.functionName || "(anonymous)"} ${short(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
const isOurs = (node) => /\/dist\/src\//.test(node.callFrame.url) || /\/bench\/peers\//.test(node.callFrame.url);

// Inclusive time by the outermost frame of our code in each stack (a subscriber, a wrapper, the
// flush), so that the node internals it calls (fs, JSON.parse) are counted with it.
const byEntry = new Map();
const bySelf = new Map();
const byFile = new Map();
let ours = 0;
for (const [id, micros] of selfMicros) {
  const node = byId.get(id);
  const key = node.callFrame.url === "" ? node.callFrame.functionName : label(node);
  bySelf.set(key, (bySelf.get(key) ?? 0) + micros);
  const file = node.callFrame.url === "" ? `(${node.callFrame.functionName})` : short(node.callFrame.url);
  byFile.set(file, (byFile.get(file) ?? 0) + micros);
  // Inclusive: does any frame of this stack belong to our code? Which is the outermost?
  let outermost;
  for (let at = id; at !== undefined; at = parent.get(at)) if (isOurs(byId.get(at))) outermost = byId.get(at);
  if (outermost !== undefined) {
    ours += micros;
    const key = label(outermost);
    byEntry.set(key, (byEntry.get(key) ?? 0) + micros);
  }
}

const pct = (micros) => `${((100 * micros) / total).toFixed(1).padStart(5)}%`;
const ms = (micros) => `${(micros / 1000).toFixed(1).padStart(8)} ms`;
console.log(`total sampled ${ms(total)}; stacks through dist/src or bench/peers (inclusive): ${ms(ours)} ${pct(ours)}`);
console.log("\ninclusive time by the outermost frame of dist/src or bench/peers:");
for (const [key, micros] of [...byEntry].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(micros)} ${pct(micros)}  ${key}`);
console.log("\nself time by function:");
for (const [key, micros] of [...bySelf].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(micros)} ${pct(micros)}  ${key}`);
console.log("\nself time by file:");
for (const [key, micros] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(micros)} ${pct(micros)}  ${key}`);
