/**
 * `npm run demo`: runs examples/app.mjs (an ordinary app) under the preload and prints what the
 * app printed, then the CSV it produced. Without MISTRAL_API_KEY the app talks to a local mock
 * Mistral server; with it, to the real API.
 */
import { spawn } from "node:child_process";
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
await mock?.close();

console.log(`\n$ cat ${logPath}`);
try {
  process.stdout.write(readFileSync(logPath, "utf8"));
} catch {
  console.log("(no log file was written)");
}
process.exitCode = code ?? 1;
