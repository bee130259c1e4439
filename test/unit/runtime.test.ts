import assert from "node:assert/strict";
import { test } from "node:test";
import { untappableRuntime, untappableRuntimeMessage } from "../../src/runtime.js";

test("Bun and Deno are recognised (they load the preload but publish no channels); Node is not", () => {
  assert.equal(untappableRuntime({ Bun: {} }, { node: "22.0.0", bun: "1.2.0" }), "Bun");
  assert.equal(untappableRuntime({}, { node: "22.0.0", bun: "1.2.0" }), "Bun");
  assert.equal(untappableRuntime({ Deno: {} }, { node: "20.11.1" }), "Deno");
  assert.equal(untappableRuntime({}, { node: "20.11.1", deno: "2.1.0" }), "Deno");
  assert.equal(untappableRuntime(), undefined, "this Node");
  assert.match(untappableRuntimeMessage("Bun"), /^Bun publishes no HTTP diagnostics channels.*`npx mistral-usage-log run -- bun app\.ts`/);
});
