/**
 * The metrics export's cost, a part of `npm run bench` (`--only otlp`). Variants, interleaved per
 * round: A no preload, B the preload with the export off, E the preload with MISTRAL_USAGE_OTLP=1
 * exporting to a loopback receiver (an HTTP server in this process that answers 200). Reported:
 * start-up (when the app's first line runs), the first call (E starts its exporter thread there, whose
 * start-up CPU is counted in the 500 ms pause after it),
 * wall and CPU per later call (CPU of every thread, the exporter thread's included), and the exit
 * (from the app's last line to the process's end: E makes its last export there). Medians.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

type Variant = "A" | "B" | "E";
const NAMES: Record<Variant, string> = { A: "no preload", B: "preload, export off", E: "preload, MISTRAL_USAGE_OTLP=1" };

interface ClientResult {
  appStartsMs: number;
  firstCallMs: number;
  firstCpuMicros: number;
  perCallMs: number;
  cpuMicrosPerCall: number;
  peakRssMB: number;
  endAtMs: number;
}
interface Sample extends ClientResult {
  variant: Variant;
  exitMs: number;
}

export interface OtlpPart {
  readonly text: string;
  readonly markdown: string;
  readonly samples: readonly Sample[];
  readonly exportsReceived: number;
}

export async function runOtlpPart(options: {
  root: string;
  register: string;
  serverUrl: string;
  serverHostPort: string;
  env: NodeJS.ProcessEnv;
  rounds: number;
  calls: number;
  logDir: string;
  /** run.ts's child runner: `node ...argv` with `env`, its exit code and output. */
  runNode(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }>;
}): Promise<OtlpPart> {
  let exportsReceived = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.method === "POST" && req.url === "/v1/metrics") exportsReceived++;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const client = path.join(options.root, "bench", "otlp-client.mjs");
  const samples: Sample[] = [];
  const variants: Variant[] = ["A", "B", "E"];
  try {
    for (let round = 0; round < options.rounds; round++) {
      for (let i = 0; i < variants.length; i++) {
        const variant = variants[(i + round) % variants.length]!;
        const env: NodeJS.ProcessEnv = {
          ...options.env,
          MISTRAL_USAGE_HOSTS: options.serverHostPort,
          MISTRAL_USAGE_LOG: path.join(options.logDir, `otlp-${round}-${variant}.csv`),
          ...(variant === "E" ? { MISTRAL_USAGE_OTLP: "1", OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl } : {}),
        };
        const argv = [...(variant === "A" ? [] : ["--import", options.register]), client, "--url", options.serverUrl, "--calls", String(options.calls)];
        const started = performance.now();
        const { code, stdout, stderr } = await options.runNode(argv, env);
        const totalMs = performance.now() - started;
        const line = stdout.trim().split("\n").pop() ?? "";
        if (code !== 0 || !line.startsWith("{")) throw new Error(`otlp ${variant} failed (exit ${code}):\n${stdout}\n${stderr}`);
        const result = JSON.parse(line) as ClientResult;
        samples.push({ ...result, variant, exitMs: totalMs - result.endAtMs });
      }
    }
  } finally {
    await new Promise((resolve) => receiver.close(resolve));
  }

  const metrics: Array<[string, string, (s: Sample) => number]> = [
    ["start-up: the app's first line runs at", "ms", (s) => s.appStartsMs],
    ["first call (E: starts the exporter thread)", "ms", (s) => s.firstCallMs],
    ["CPU of the first call and the 500 ms after it, all threads", "us", (s) => s.firstCpuMicros],
    [`wall per call, ${options.calls} calls after the first`, "ms", (s) => s.perCallMs],
    ["CPU per call, all threads", "us", (s) => s.cpuMicrosPerCall],
    ["exit: last line of the app to process end", "ms", (s) => s.exitMs],
    ["peak RSS", "MB", (s) => s.peakRssMB],
  ];
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const of = (variant: Variant, get: (s: Sample) => number) => median(samples.filter((s) => s.variant === variant).map(get));
  const within = (variant: Variant, get: (s: Sample) => number) =>
    median(
      samples
        .filter((s) => s.variant === variant)
        .map((s, round) => get(s) - get(samples.filter((x) => x.variant === "A")[round]!)),
    );
  const fmt = (value: number, unit: string) => (unit === "us" ? value.toFixed(0) : unit === "MB" ? value.toFixed(1) : value.toFixed(2));
  const signed = (value: number, unit: string) => `${value >= 0 ? "+" : ""}${fmt(value, unit)}`;
  const header = ["metric", "A", "B", "E", "B - A", "E - A"];
  const rows = metrics.map(([name, unit, get]) => [
    `${name} (${unit})`,
    fmt(of("A", get), unit),
    fmt(of("B", get), unit),
    fmt(of("E", get), unit),
    signed(within("B", get), unit),
    signed(within("E", get), unit),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const text = [
    `Metrics export (${options.rounds} rounds; A = ${NAMES.A}, B = ${NAMES.B}, E = ${NAMES.E}; medians, differences within a round)`,
    header.map((h, i) => h.padEnd(widths[i]!)).join("  "),
    ...rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ")),
    `exports received: ${exportsReceived} (one per E process, made at its exit)`,
  ].join("\n");
  const markdown = [
    `**Metrics export** (${options.rounds} rounds; A = ${NAMES.A}, B = ${NAMES.B}, E = ${NAMES.E}; medians, differences within a round)`,
    "",
    `| ${header.join(" | ")} |`,
    `| --- | ${header.slice(1).map(() => "---:").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
    "",
    `Exports received: ${exportsReceived} (one per E process, made at its exit).`,
  ].join("\n");
  return { text, markdown, samples, exportsReceived };
}
