/**
 * `mistral-usage run` end to end: the command runs a real app (a child of a child) that calls the
 * loopback mock Mistral server; the preload it added logs the calls.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { TestContext } from "node:test";
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { MockMistral } from "../support/mock-mistral.js";
import { childEnv, mockFor, readCsv } from "../support/run-app.js";
import type { RunResult } from "../support/run-app.js";
import { HEADER, cli, cliPath, tmp, writeLog } from "./cli-helpers.js";


/** An ordinary app: plain fetch to the mock, nothing imported from this package. */
const APP = `
const base = process.env.MOCK_URL;
const models = (process.env.MODELS ?? "mistral-small-latest").split(",");
for (const model of models) {
  const embed = model.includes("embed");
  const res = await fetch(base + (embed ? "/v1/embeddings" : "/v1/chat/completions"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(embed ? { model, input: ["hi"] } : { model, messages: [{ role: "user", content: "hi" }] }),
  });
  await res.json();
}
console.log("app:", process.argv.slice(2).join(" "));
`;

async function setup(t: TestContext, extraFiles: Record<string, string> = {}): Promise<{ dir: string; mock: MockMistral; env: Record<string, string> }> {
  const dir = await tmp(t);
  const mock = await mockFor(t);
  await writeFile(join(dir, "app.mjs"), APP);
  for (const [name, text] of Object.entries(extraFiles)) await writeFile(join(dir, name), text);
  return { dir, mock, env: { MOCK_URL: mock.url, MISTRAL_USAGE_HOSTS: mock.hostPort } };
}

function summaryOf(r: RunResult): string {
  return r.stderr.split("\n").filter((l) => l.startsWith("mistral-usage: ")).join("\n");
}

describe("run", () => {
  test("logs the app's calls and prints one summary line; the app's output and arguments pass through", async (t) => {
    const { dir, mock, env } = await setup(t);
    const r = await cli(["run", "--", "node", "app.mjs", "--flag", "x y"], { cwd: dir, env: { ...env, MODELS: "mistral-small-latest,mistral-embed,mistral-small-latest" } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "app: --flag x y\n");
    const log = await readCsv(join(dir, "mistral_usage_log.csv"));
    assert.equal(log.header, HEADER);
    assert.equal(log.rows.length, 3);
    const tokens = mock.served.reduce((sum, s) => sum + s.totalTokens, 0);
    const cost = mock.served.reduce((sum, s) => sum + (s.model === "mistral-embed" ? s.promptTokens * 0.1 : s.promptTokens * 0.15 + s.completionTokens * 0.6) / 1e6, 0);
    const usd = cost < 0.00005 ? "<\\$0\\.0001" : `\\$${cost.toFixed(4).replace(".", "\\.")}`;
    assert.match(summaryOf(r), new RegExp(`^mistral-usage: 3 calls logged to ${join(dir, "mistral_usage_log.csv").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(${tokens} tokens, est\\. ${usd}\\)$`));
  });

  test("options after the command are the command's; no -- needed", async (t) => {
    const { dir, env } = await setup(t);
    const r = await cli(["run", "-q", "node", "app.mjs", "--quiet", "-h"], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "app: --quiet -h\n");
    assert.equal(summaryOf(r), "", "-q before the command silences the summary");
  });

  test("NODE_OPTIONS keeps what it had and reaches grandchildren (spawn of process.execPath)", async (t) => {
    const { dir, env } = await setup(t, {
      "parent.mjs": `
import { spawnSync } from "node:child_process";
console.log("NODE_OPTIONS=" + process.env.NODE_OPTIONS);
const r = spawnSync(process.execPath, ["app.mjs", "grandchild"], { stdio: "inherit" });
process.exitCode = r.status ?? 1;
`,
    });
    const r = await cli(["run", "--", "node", "parent.mjs"], { cwd: dir, env: { ...env, NODE_OPTIONS: "--max-old-space-size=200" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NODE_OPTIONS=--max-old-space-size=200 --import=file:\/\/\/\S+\/register\.js\napp: grandchild\n$/);
    assert.equal((await readCsv(join(dir, "mistral_usage_log.csv"))).rows.length, 1);
    assert.match(summaryOf(r), /^mistral-usage: 1 call logged to /);
  });

  test("the exit code passes through; the summary still comes", async (t) => {
    const { dir, env } = await setup(t);
    const r = await cli(["run", "--", "node", "-e", "process.exitCode = 7"], { cwd: dir, env });
    assert.equal(r.code, 7);
    assert.match(summaryOf(r), /^mistral-usage: no calls logged to /);
  });

  test("stdin passes through", async (t) => {
    const { dir, env } = await setup(t);
    const r = await cli(["run", "--", "node", "-e", "process.stdin.pipe(process.stdout)"], { cwd: dir, env, input: "bonjour café\n" });
    assert.equal(r.stdout, "bonjour café\n");
  });

  test("only the rows this run added are counted; MISTRAL_USAGE_LOG is honoured and made absolute", async (t) => {
    const { dir, env } = await setup(t);
    await writeLog(dir, "usage.csv", ["2026-01-01T00:00:00.000000+00:00,mistral-small-2603,1000,1000,2000"]);
    const r = await cli(["run", "--", "node", "app.mjs"], { cwd: dir, env: { ...env, MISTRAL_USAGE_LOG: "usage.csv" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(summaryOf(r), new RegExp(`^mistral-usage: 1 call logged to ${join(dir, "usage.csv").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(\\d+ tokens`));
    assert.equal((await readCsv(join(dir, "usage.csv"))).rows.length, 2);
  });

  test("a model without a price is named in the summary, not costed at $0", async (t) => {
    const { dir, env } = await setup(t);
    const r = await cli(["run", "--", "node", "app.mjs"], { cwd: dir, env: { ...env, MODELS: "voxtral-mini-2507" } });
    assert.match(summaryOf(r), /\(\d+ tokens, est\. cost n\/a \(no price for voxtral-mini-2507\)\)$/);
  });

  test("command not found: 127; not executable: 126", async (t) => {
    const dir = await tmp(t);
    const missing = await cli(["run", "--", "no-such-command-xyz"], { cwd: dir });
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /no-such-command-xyz: command not found/);
    await writeFile(join(dir, "script.sh"), "#!/bin/sh\necho hi\n", { mode: 0o644 });
    const notExec = await cli(["run", "--", "./script.sh"], { cwd: dir });
    assert.equal(notExec.code, 126, notExec.stderr);
  });

  test("SIGTERM is forwarded: the app's handler runs, and its exit code comes back", async (t) => {
    const { dir, env } = await setup(t, {
      "wait.mjs": `
process.on("SIGTERM", () => { console.log("app got SIGTERM"); process.exit(42); });
console.log("ready");
setInterval(() => {}, 1000);
`,
    });
    const r = await runAndSignal(dir, env, ["run", "--", "node", "wait.mjs"], "SIGTERM");
    assert.equal(r.code, 42, r.stderr);
    assert.equal(r.stdout, "ready\napp got SIGTERM\n");
    assert.match(r.stderr, /mistral-usage: no calls logged/);
  });

  test("an app killed by a signal: run ends by the same signal, after the summary", async (t) => {
    const { dir, env } = await setup(t, { "wait.mjs": `console.log("ready");\nsetInterval(() => {}, 1000);\n` });
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      const r = await runAndSignal(dir, env, ["run", "--", "node", "wait.mjs"], signal);
      assert.equal(r.signal, signal, `${signal}: ${r.stderr}`);
      assert.equal(r.code, null);
      assert.match(r.stderr, /mistral-usage: no calls logged/);
    }
  });
});

/**
 * Starts `mistral-usage ...args` in its own process group, sends `signal` to it (only) once the
 * app printed "ready", and collects the result. On a timeout the whole group is killed, so that a
 * failure cannot leave the app holding the pipes open (the test would then hang, not fail).
 */
function runAndSignal(cwd: string, env: Record<string, string>, args: string[], signal: NodeJS.Signals): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let sent = false;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), "SIGKILL");
      } catch {
        // Already gone.
      }
    }, 30_000);
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (!sent && stdout.includes("ready\n")) {
        sent = true;
        child.kill(signal);
      }
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("close", (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stdout, stderr: timedOut ? `${stderr}\n[test] killed after 30 s` : stderr, timedOut });
    });
  });
}
