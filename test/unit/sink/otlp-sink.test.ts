import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import { otlpConfigFromEnv } from "../../../src/sink/otlp/config.js";
import { OtlpSink } from "../../../src/sink/otlp/sink.js";
import type { UsageEvent } from "../../../src/record/usage-event.js";
import { tempDirFor } from "../../support/run-app.js";

const config = otlpConfigFromEnv({ MISTRAL_USAGE_OTLP: "1", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9/otlp" }).config!;
const event: UsageEvent = {
  epochMicros: 0,
  endpoint: "chat",
  server: { address: "api.mistral.ai", port: 443 },
  requestModel: undefined,
  responseModel: "mistral-small-2603",
  counts: { promptTokens: 10, completionTokens: 2, totalTokens: 12 },
};

describe("OtlpSink", () => {
  test("costs nothing without events: no thread, no warning, close() returns at once", async (t) => {
    const dir = await tempDirFor(t);
    const marker = join(dir, "started");
    const exporterPath = join(dir, "marker.cjs");
    await writeFile(exporterPath, `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "");`);
    const warnings: string[] = [];
    const sink = new OtlpSink(config, { warn: (m) => warnings.push(m), exporterPath });
    sink.flush();
    sink.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(existsSync(marker), false, "no exporter thread started");
    assert.deepEqual(warnings, [] as string[]);
    // The same sink with one event does start it (so the check above can fail).
    const used = new OtlpSink(config, { warn: (m) => warnings.push(m), exporterPath, exitWaitMillis: 1 });
    used.append(event);
    const deadline = Date.now() + 10_000;
    while (!existsSync(marker) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(existsSync(marker), true);
    used.close();
  });

  test("a missing exporter bundle: one warning, events dropped, nothing thrown", async () => {
    const warnings: string[] = [];
    const sink = new OtlpSink(config, { warn: (m) => warnings.push(m), exporterPath: "/nonexistent/otlp-exporter.cjs" });
    sink.append(event);
    sink.append(event);
    await new Promise((resolve) => setImmediate(resolve));
    sink.append(event);
    sink.close();
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /metrics exporter .*The CSV log has every row/);
  });

  test("an exporter that never answers: close() waits at most exitWaitMillis, then one warning", async (t) => {
    const dir = await tempDirFor(t);
    const silent = join(dir, "silent.cjs");
    // Takes messages and never acknowledges a flush.
    await writeFile(silent, 'require("node:worker_threads").parentPort.on("message", () => {});');
    const warnings: string[] = [];
    const sink = new OtlpSink(config, { warn: (m) => warnings.push(m), exporterPath: silent, exitWaitMillis: 300 });
    sink.append(event);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    sink.close();
    const waited = performance.now() - started;
    assert.ok(waited >= 290, `waited ${waited} ms`);
    assert.deepEqual(warnings.length, 1);
    assert.match(warnings[0]!, /did not finish within 0\.3 s of exit; the tokens recorded since the previous export are missing there/);
  });

  test("an exporter thread that crashes: one warning, later events dropped, close() does not wait for it", async (t) => {
    const dir = await tempDirFor(t);
    const crashing = join(dir, "crashing.cjs");
    await writeFile(crashing, 'throw new Error("exporter bug");');
    const warnings: string[] = [];
    const sink = new OtlpSink(config, { warn: (m) => warnings.push(m), exporterPath: crashing });
    sink.append(event);
    const deadline = Date.now() + 10_000;
    while (warnings.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    sink.append(event);
    sink.close();
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0]!, /the metrics exporter stopped \(exporter bug\); usage metrics are no longer exported/);
  });
});
