/**
 * The `mistral-usage` command on a million-row log (issue 14): `report`, `validate` and `merge`,
 * this build against another one (the commit before the change, built in a temp dir) and against
 * the floor a user could write in ten lines (bench/cli-floor.mjs: stream the file line by line,
 * split on commas, sum per model). All in the same run, interleaved, on a log generated here.
 *
 *   node --import tsx bench/cli.ts [--rows N] [--rounds N] [--before REV|DIR]   (or: npm run bench -- --only cli)
 *
 * Each sample is a fresh `node` process; its wall time is taken by the parent, its peak RSS and CPU
 * time by bench/rss-at-exit.mjs at exit, loaded with --import.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(fileURLToPath(new URL("..", import.meta.url)));
const FLOOR = path.join(ROOT, "bench", "cli-floor.mjs");
const RSS_HOOK = path.join(ROOT, "bench", "rss-at-exit.mjs");
const HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens";

export interface CliBenchOptions {
  readonly rows: number;
  readonly rounds: number;
  /** A git revision to build for "before", or a directory that has dist/src/cli/main.js. */
  readonly before: string;
  readonly progress: (message: string) => void;
}

export interface CliSample {
  readonly task: string;
  readonly variant: "before" | "after" | "floor";
  readonly round: number;
  readonly seconds: number;
  /** User + system CPU time of the process: less moved by a busy machine than the wall time. */
  readonly cpuSeconds: number;
  readonly peakRssMB: number;
  readonly rowsPerSec: number;
}

export interface CliTarget {
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean;
}

export interface CliBenchResult {
  readonly rows: number;
  readonly logMB: number;
  readonly before: string;
  readonly samples: CliSample[];
  readonly targets: CliTarget[];
  /** Outputs of before and after compared byte for byte. */
  readonly sameOutput: Record<string, boolean>;
  readonly table: string;
  readonly markdown: string;
}

const MODELS = ["mistral-small-2603", "mistral-medium-latest", "codestral-2508", "mistral-embed", "mistral-large-2512", "ministral-8b-2512", "voxtral-mini-2507"];

/**
 * A log as the preload writes it: `rows` calls over about a year, several models. Split into
 * four team members' logs too (each sorted, interleaved in time), for merge.
 */
function generateLogs(dir: string, rows: number): { whole: string; team: string[] } {
  const whole = path.join(dir, "mistral_usage_log.csv");
  const team = [0, 1, 2, 3].map((k) => path.join(dir, `member-${k}.csv`));
  const fds = [whole, ...team].map((f) => fs.openSync(f, "w"));
  const chunks = fds.map(() => `${HEADER}\n`);
  let micros = Date.UTC(2025, 10, 24) * 1000;
  const span = Math.floor((365 * 86_400_000_000) / rows);
  for (let i = 0; i < rows; i++) {
    micros += span - 500_000 + ((i * 7919) % 1_000_000);
    const model = MODELS[(i * 31 + (i >> 4)) % MODELS.length] as string;
    const prompt = 20 + ((i * 7) % 5000);
    const completion = model === "mistral-embed" ? 0 : (i * 13) % 1500;
    const second = Math.floor(micros / 1_000_000);
    const line = `${new Date(second * 1000).toISOString().slice(0, 20)}${String(micros - second * 1_000_000).padStart(6, "0")}+00:00,${model},${prompt},${completion},${prompt + completion}\n`;
    chunks[0] += line;
    chunks[1 + (i % 4)] += line;
    if ((i & 8191) === 8191) for (let k = 0; k < fds.length; k++) (fs.writeSync(fds[k] as number, chunks[k] as string), (chunks[k] = ""));
  }
  for (let k = 0; k < fds.length; k++) {
    fs.writeSync(fds[k] as number, chunks[k] as string);
    fs.closeSync(fds[k] as number);
  }
  return { whole, team };
}

/** dist/src/cli/main.js of `before`: a directory as it is, or a git revision built in `dir`. */
function buildBefore(before: string, dir: string): string {
  const direct = path.resolve(before, "dist", "src", "cli", "main.js");
  if (fs.existsSync(direct)) return direct;
  const checkout = path.join(dir, `before-${before.replace(/[^\w.-]/g, "_")}`);
  fs.mkdirSync(checkout);
  const archive = spawnSync("git", ["-C", ROOT, "archive", before], { maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`git archive ${before} failed: ${archive.stderr.toString()}`);
  const untar = spawnSync("tar", ["-x", "-C", checkout], { input: archive.stdout });
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr.toString()}`);
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(checkout, "node_modules"));
  const tsc = spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: checkout, encoding: "utf8" });
  if (tsc.status !== 0) throw new Error(`building ${before} failed:\n${tsc.stdout}${tsc.stderr}`);
  return path.join(checkout, "dist", "src", "cli", "main.js");
}

interface Run {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMB: number;
  readonly stdout: Buffer;
  readonly code: number | null;
}

function run(argv: readonly string[], cwd: string, rssFile: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, BENCH_RSS_FILE: rssFile };
    delete env["NODE_OPTIONS"];
    const start = performance.now();
    const child = spawn(process.execPath, ["--import", RSS_HOOK, ...argv], { cwd, env, stdio: ["ignore", "pipe", "ignore"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = (performance.now() - start) / 1000;
      const { rssKiB, cpuMicros } = JSON.parse(fs.readFileSync(rssFile, "utf8")) as { rssKiB: number; cpuMicros: number };
      resolve({ seconds, cpuSeconds: cpuMicros / 1e6, peakRssMB: rssKiB / 1024, stdout: Buffer.concat(out), code });
    });
  });
}

const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

export async function runCliBench(options: CliBenchOptions): Promise<CliBenchResult> {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "mistral-usage-cli-bench-")));
  try {
    const after = path.join(ROOT, "dist", "src", "cli", "main.js");
    if (!fs.existsSync(after)) throw new Error("dist/ is missing: run npm run build first");
    options.progress(`cli: building ${options.before} for "before"`);
    const before = buildBefore(options.before, dir);
    options.progress(`cli: generating a ${options.rows.toLocaleString("en")}-row log`);
    const logs = generateLogs(dir, options.rows);
    const logMB = fs.statSync(logs.whole).size / 2 ** 20;
    const rssFile = path.join(dir, "rss");
    const main = { before, after };
    const tasks: { name: string; variants: ("before" | "after" | "floor")[]; argv: (v: "before" | "after" | "floor", round: number) => string[] }[] = [
      { name: "report", variants: ["before", "after", "floor"], argv: (v) => (v === "floor" ? [FLOOR, logs.whole] : [main[v], "report", "--json", logs.whole]) },
      { name: "validate", variants: ["before", "after", "floor"], argv: (v) => (v === "floor" ? [FLOOR, logs.whole] : [main[v], "validate", logs.whole]) },
      { name: "merge (4 logs)", variants: ["before", "after"], argv: (v, round) => [main[v as "before" | "after"], "merge", "-o", path.join(dir, `merged-${v}-${round}.csv`), ...logs.team] },
    ];
    const samples: CliSample[] = [];
    const outputs = new Map<string, Buffer>();
    for (let round = 0; round < options.rounds; round++) {
      for (const task of tasks) {
        const order = task.variants.map((_, i) => task.variants[(i + round) % task.variants.length] as "before" | "after" | "floor");
        for (const variant of order) {
          const r = await run(task.argv(variant, round), dir, rssFile);
          if (r.code !== 0) throw new Error(`${task.name} ${variant} exited ${r.code}`);
          samples.push({ task: task.name, variant, round, seconds: r.seconds, cpuSeconds: r.cpuSeconds, peakRssMB: r.peakRssMB, rowsPerSec: options.rows / r.seconds });
          if (round === 0 && variant !== "floor") {
            const output = task.name.startsWith("merge") ? fs.readFileSync(path.join(dir, `merged-${variant}-0.csv`)) : r.stdout;
            outputs.set(`${task.name} ${variant}`, output);
          }
          if (task.name.startsWith("merge")) fs.rmSync(path.join(dir, `merged-${variant}-${round}.csv`), { force: true });
        }
      }
      options.progress(`cli: round ${round + 1}/${options.rounds} done`);
    }
    const sameOutput: Record<string, boolean> = {};
    for (const task of tasks) sameOutput[task.name] = outputs.get(`${task.name} before`)?.equals(outputs.get(`${task.name} after`) ?? Buffer.alloc(0)) ?? false;
    return summarize(options, logMB, samples, sameOutput);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function summarize(options: CliBenchOptions, logMB: number, samples: CliSample[], sameOutput: Record<string, boolean>): CliBenchResult {
  const tasks = [...new Set(samples.map((s) => s.task))];
  const of = (task: string, variant: string): CliSample[] => samples.filter((s) => s.task === task && s.variant === variant);
  // Ratios within a round, then their median: drift of a shared machine hits both alike.
  const ratio = (task: string, a: string, b: string, get: (s: CliSample) => number): number =>
    median(of(task, a).map((s) => get(s) / get(of(task, b).find((x) => x.round === s.round) as CliSample)));
  const lines: string[][] = [];
  for (const task of tasks) {
    for (const variant of ["before", "after", "floor"]) {
      const got = of(task, variant);
      if (got.length === 0) continue;
      const secs = got.map((s) => s.seconds);
      lines.push([
        task,
        variant === "floor" ? "floor (bench/cli-floor.mjs)" : variant,
        `${median(secs).toFixed(2)} [${Math.min(...secs).toFixed(2)}-${Math.max(...secs).toFixed(2)}]`,
        median(got.map((s) => s.cpuSeconds)).toFixed(2),
        Math.round(median(got.map((s) => s.rowsPerSec))).toLocaleString("en"),
        median(got.map((s) => s.peakRssMB)).toFixed(0),
        variant === "before" ? "1.00" : `${ratio(task, "before", variant, (s) => s.seconds).toFixed(1)}x`,
        variant === "before" ? "1.00" : `${ratio(task, "before", variant, (s) => s.cpuSeconds).toFixed(1)}x`,
      ]);
    }
  }
  const header = ["command", "build", "seconds, median [min-max]", "CPU s", "rows/s", "peak RSS MB", "vs before (wall)", "vs before (CPU)"];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const table = [header, widths.map((w) => "-".repeat(w)), ...lines].map((l) => l.map((c, i) => (i < 2 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ")).join("\n");
  const markdown = [`| ${header.join(" | ")} |`, `| --- | --- | ${header.slice(2).map(() => "---:").join(" | ")} |`, ...lines.map((l) => `| ${l.join(" | ")} |`)].join("\n");

  const targets: CliTarget[] = [];
  for (const task of ["report", "validate"]) {
    if (of(task, "after").length === 0) continue;
    const speedup = ratio(task, "before", "after", (s) => s.seconds);
    const cpu = ratio(task, "before", "after", (s) => s.cpuSeconds);
    targets.push({ target: `${task} >= 5x faster than before`, measured: `${speedup.toFixed(1)}x (CPU time ${cpu.toFixed(1)}x)`, pass: speedup >= 5 });
    const vsFloor = ratio(task, "floor", "after", (s) => s.seconds);
    const vsFloorCpu = ratio(task, "floor", "after", (s) => s.cpuSeconds);
    targets.push({ target: `${task} faster than the minimal line-split script`, measured: `${vsFloor.toFixed(2)}x its speed (CPU time ${vsFloorCpu.toFixed(2)}x)`, pass: vsFloor > 1 });
  }
  const merge = tasks.find((t) => t.startsWith("merge"));
  if (merge !== undefined) {
    const speedup = ratio(merge, "before", "after", (s) => s.seconds);
    const cpu = ratio(merge, "before", "after", (s) => s.cpuSeconds);
    targets.push({ target: `${merge} >= 3x faster than before`, measured: `${speedup.toFixed(1)}x (CPU time ${cpu.toFixed(1)}x)`, pass: speedup >= 3 });
    const memory = 1 / ratio(merge, "before", "after", (s) => s.peakRssMB);
    targets.push({ target: `${merge} peak RSS <= 0.5x before`, measured: `${memory.toFixed(2)}x`, pass: memory <= 0.5 });
  }
  for (const [task, same] of Object.entries(sameOutput)) targets.push({ target: `${task}: output identical to before`, measured: same ? "identical" : "DIFFERS", pass: same });
  return { rows: options.rows, logMB, before: options.before, samples, targets, sameOutput, table, markdown };
}

// Run on its own: node --import tsx bench/cli.ts [--rows N] [--rounds N] [--before REV|DIR]
if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { parseArgs } = await import("node:util");
  const { values } = parseArgs({ options: { rows: { type: "string", default: "1000000" }, rounds: { type: "string", default: "3" }, before: { type: "string", default: "2fab28e" } } });
  const result = await runCliBench({
    rows: Number(values.rows),
    rounds: Number(values.rounds),
    before: values.before as string,
    progress: (m) => process.stderr.write(`[cli bench] ${m}\n`),
  });
  console.log(`mistral-usage on a ${result.rows.toLocaleString("en")}-row log (${result.logMB.toFixed(0)} MB), node ${process.version}, before = ${result.before}`);
  console.log(result.table);
  console.log("\nTargets");
  for (const t of result.targets) console.log(`  ${t.pass ? "holds " : "MISSED"}  ${t.target}: ${t.measured}`);
}
