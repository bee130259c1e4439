import assert from "node:assert/strict";
import { test } from "node:test";
import { envWithoutPrompt, untappableRuntime, untappableRuntimeMessage } from "../../src/runtime.js";

test("Bun and Deno are recognised (they load the preload but publish no channels); Node is not", () => {
  assert.equal(untappableRuntime({ Bun: {} }, { node: "22.0.0", bun: "1.2.0" }), "Bun");
  assert.equal(untappableRuntime({}, { node: "22.0.0", bun: "1.2.0" }), "Bun");
  assert.equal(untappableRuntime({ Deno: {} }, { node: "20.11.1" }), "Deno");
  assert.equal(untappableRuntime({}, { node: "20.11.1", deno: "2.1.0" }), "Deno");
  assert.equal(untappableRuntime(), undefined, "this Node");
  assert.match(untappableRuntimeMessage("Bun"), /^Bun publishes no HTTP diagnostics channels.*`npx mistral-usage-log run -- bun app\.ts`/);
});

test("envWithoutPrompt reads under Deno only the variables whose access was granted (a read would prompt or throw)", () => {
  const asked: string[] = [];
  const deno = (granted: string[], values: Record<string, string>) => ({
    Deno: {
      permissions: { querySync: ({ variable }: { variable: string }) => ({ state: granted.includes(variable) ? "granted" : "prompt" }) },
      env: {
        get: (name: string) => {
          asked.push(name);
          return values[name];
        },
      },
    },
  });
  assert.equal(envWithoutPrompt("A", deno(["A"], { A: "1", B: "2" })), "1");
  assert.equal(envWithoutPrompt("B", deno(["A"], { A: "1", B: "2" })), undefined);
  assert.deepEqual(asked, ["A"], "B was never read");
  const broken = { Deno: { permissions: { querySync: () => { throw new Error("no"); } }, env: { get: () => "x" } } };
  assert.equal(envWithoutPrompt("A", broken), undefined);
  process.env["MUL_RUNTIME_TEST"] = "node";
  assert.equal(envWithoutPrompt("MUL_RUNTIME_TEST"), "node", "Node: process.env");
  delete process.env["MUL_RUNTIME_TEST"];
});
