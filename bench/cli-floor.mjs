// The floor for `mistral-usage report` in issue 14: the script a user could write in ten lines.
// It streams the log line by line, splits on commas and sums the counts per model; it checks
// nothing and knows no quoting.
import fs from "node:fs";
import readline from "node:readline";

const lines = readline.createInterface({ input: fs.createReadStream(process.argv[2]), crlfDelay: Infinity });
const sums = new Map();
let header = true;
for await (const line of lines) {
  if (header) {
    header = false;
    continue;
  }
  const f = line.split(",");
  const s = sums.get(f[1]) ?? [0, 0, 0, 0];
  s[0]++;
  s[1] += Number(f[2]);
  s[2] += Number(f[3]);
  s[3] += Number(f[4]);
  sums.set(f[1], s);
}
console.log(JSON.stringify(Object.fromEntries(sums)));
