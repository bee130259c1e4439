/**
 * `npm run demo`: runs examples/app.mjs (an ordinary Node app) under the preload, then
 * examples/app.py (an ordinary Python app) under `mistral-usage run`, and prints what they printed,
 * then the CSV they produced. Without MISTRAL_API_KEY the app talks to a local mock
 * Mistral server; with it, to the real API.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startMockMistral, type MockMistral } from "../test/support/mock-mistral.js";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const register = path.join(repoRoot, "register.js");
const app = path.join(repoRoot, "examples", "app.mjs");
const logPath = process.env["MISTRAL_USAGE_LOG"] ?? path.join(mkdtempSync(path.join(os.tmpdir(), "mistral-usage-demo-")), "mistral_usage_log.csv");

const live = (process.env["MISTRAL_API_KEY"] ?? "") !== "";
let mock: MockMistral | undefined;
const env: NodeJS.ProcessEnv = { ...process.env, MISTRAL_USAGE_LOG: logPath };
delete env["NODE_OPTIONS"]; // the demo itself runs under tsx; the app gets only the preload
if (live) {
  console.log("MISTRAL_API_KEY is set: calling the real Mistral API.\n");
} else {
  mock = await startMockMistral({ defaults: "gzip" });
  env["MISTRAL_SERVER_URL"] = mock.url;
  env["MISTRAL_USAGE_HOSTS"] = mock.hostPort; // the mock is not *.mistral.ai, so name it
  console.log(`No MISTRAL_API_KEY: calling a local mock Mistral server at ${mock.url}.\n`);
}

console.log(`$ node --import ${register} ${path.relative(process.cwd(), app)}`);
const code = await new Promise<number | null>((resolve) => {
  const child = spawn(process.execPath, ["--import", register, app], { env, stdio: "inherit" });
  child.on("exit", (exitCode) => resolve(exitCode));
});

// The same for a Python app, under `mistral-usage run` (a local proxy), when a python3 with
// requests is at hand.
const python = ["/usr/bin/python3", "python3"].find((candidate) => spawnSync(candidate, ["-c", "import requests"], { stdio: "ignore" }).status === 0);
let pythonCode: number | null = 0;
if (python === undefined) {
  console.log("\n(no python3 with the requests module here: skipping the Python app under `mistral-usage run`)");
} else {
  const cli = path.join(repoRoot, "dist", "src", "cli", "main.js");
  const pyApp = path.join(repoRoot, "examples", "app.py");
  console.log(`\n$ mistral-usage run -- ${python} ${path.relative(process.cwd(), pyApp)}`);
  pythonCode = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [cli, "run", "--", python, pyApp], { env, stdio: "inherit" });
    child.on("exit", (exitCode) => resolve(exitCode));
  });
}
await mock?.close();

console.log(`\n$ cat ${logPath}`);
try {
  process.stdout.write(readFileSync(logPath, "utf8"));
} catch {
  console.log("(no log file was written)");
}
process.exitCode = code === 0 ? (pythonCode ?? 1) : (code ?? 1);
