/**
 * Helpers for the `mistral-usage` tests: run the built command as a child process, write fixture
 * logs into temp directories.
 */
import { readdirSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { LOG_HEADER, repoRoot, runNode, tempDirFor } from "../support/run-app.js";
import type { RunResult } from "../support/run-app.js";

export const HEADER = LOG_HEADER;

/** The command as installed: `bin` in package.json points here. */
export const cliPath = join(repoRoot, "dist", "src", "cli", "main.js");

let checked = false;

/**
 * The tests run the compiled command (what `npx mistral-usage` runs), so a build older than the
 * sources would test old code: fail loudly instead.
 */
export function assertBuilt(): void {
  if (checked) return;
  const srcDir = join(repoRoot, "src", "cli");
  for (const file of readdirSync(srcDir)) {
    if (!file.endsWith(".ts")) continue;
    const built = join(repoRoot, "dist", "src", "cli", file.replace(/\.ts$/, ".js"));
    let builtTime: number;
    try {
      builtTime = statSync(built).mtimeMs;
    } catch {
      throw new Error(`${built} is missing: run npm run build (npm test does it)`);
    }
    if (statSync(join(srcDir, file)).mtimeMs > builtTime + 1) throw new Error(`dist is older than src/cli/${file}: run npm run build (npm test does it)`);
  }
  checked = true;
}

export interface CliOptions {
  cwd: string;
  env?: Record<string, string | undefined>;
  input?: string;
  nodeArgs?: string[];
  timeoutMs?: number;
}

/** Runs `mistral-usage ...args`; never rejects on a non-zero exit. */
export function cli(args: string[], opts: CliOptions): Promise<RunResult> {
  assertBuilt();
  return runNode([...(opts.nodeArgs ?? []), cliPath, ...args], {
    cwd: opts.cwd,
    ...(opts.env === undefined ? {} : { env: opts.env }),
    ...(opts.input === undefined ? {} : { input: opts.input }),
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
}

/** A temp directory removed after the test. */
export function tmp(t: TestContext): Promise<string> {
  return tempDirFor(t, "mul-cli-");
}

export interface Row {
  ts: string;
  model: string;
  prompt: number;
  completion: number;
  total: number;
}

export function rowLine(r: Row): string {
  return `${r.ts},${r.model},${r.prompt},${r.completion},${r.total}`;
}

/** Writes a log with the header and `rows` (or raw lines), LF endings. */
export async function writeLog(dir: string, name: string, rows: readonly (Row | string)[], header = HEADER): Promise<string> {
  const file = join(dir, name);
  const lines = [header, ...rows.map((r) => (typeof r === "string" ? r : rowLine(r)))];
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

/** `2026-11-24T10:30:01.123456+00:00` for a number of microseconds since the epoch. */
export function ts(micros: number): string {
  const millis = Math.floor(micros / 1000);
  return `${new Date(millis).toISOString().slice(0, 23)}${String(micros - millis * 1000).padStart(3, "0")}+00:00`;
}

export const BASE_MICROS = Date.UTC(2026, 10, 24, 10, 30, 1) * 1000 + 123_456;

/** A deterministic pseudo-random sequence (mulberry32), so failures reproduce. */
export function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
