/**
 * The metrics sink as the preload bundles it: thin. It costs nothing until the first usage event
 * (one `process.on("worker")` listener), then starts the exporter thread (dist/otlp-exporter.cjs,
 * the OpenTelemetry SDK) and hands it events in batches. The SDK itself is never loaded into the
 * app's threads.
 *
 * Exact at exit: `close()` (the exit path) hands over what is pending, asks the exporter thread to
 * export, and waits for it on shared memory, at most EXIT_WAIT_MS, then gives up with one warning.
 * The app's own worker threads do not start exporters of their own: they post their events to the
 * main thread over a BroadcastChannel, which the main thread drains synchronously at exit, so a
 * worker pool that is terminated (no `exit` event runs in its threads) loses nothing either.
 */
import type * as WorkerThreads from "node:worker_threads";
import { ENV } from "../../config.js";
import type { UsageEvent } from "../../record/usage-event.js";
import { internalErrorReporter } from "../../report.js";
import type { UsageSink } from "../sink.js";
import type { OtlpConfig } from "./config.js";
import type { ExporterThreadData } from "./exporter-thread.js";
import { isWireEvent, SHARED_SLOTS, SLOT, toWire, WORKER_CHANNEL, type ChannelBatch, type FromExporter, type ToExporter, type WireEvent } from "./wire.js";

/** How long the exiting thread waits for the last export: long enough for a loopback or LAN receiver and one retry. */
export const EXIT_WAIT_MS = 2000;
/** The wait when exports are already failing: one more attempt may succeed, but a receiver that is down must not hold the exit. */
export const EXIT_WAIT_FAILING_MS = 300;
/** How long the main thread batches events before handing them to the exporter thread (much less than any export interval). */
const HAND_OVER_MS = 200;
/** A batch this long is handed over at once: bounded memory whatever the call rate. */
const MAX_PENDING = 1024;

export interface OtlpSinkOptions {
  warn(message: string): void;
  /** The exporter thread's bundle; found next to this module's build by default. */
  readonly exporterPath?: string | URL;
  readonly exitWaitMillis?: number;
}

interface ExporterThread {
  readonly worker: WorkerThreads.Worker;
  readonly slots: Int32Array;
  readonly reports: WorkerThreads.MessagePort;
}

// Where dist/otlp-exporter.cjs is, seen from the three places this module runs from: bundled into
// dist/register.js, compiled to dist/src/sink/otlp/, and as TypeScript in src/sink/otlp/ (tests).
const EXPORTER_CANDIDATES = ["./otlp-exporter.cjs", "../../../otlp-exporter.cjs", "../../../dist/otlp-exporter.cjs"];

export class OtlpSink implements UsageSink {
  readonly #config: OtlpConfig;
  readonly #options: OtlpSinkOptions;
  #pending: WireEvent[] = [];
  #handOverScheduled = false;
  #exporter: ExporterThread | undefined;
  /** The exporter could not be started: events are dropped (the CSV has them), after one warning. */
  #broken = false;
  /** Events were handed to the exporter thread since its last flush. */
  #unflushed = false;
  #flushSeq = 0;
  /** Main thread: where the app's workers post their events. A worker thread: where it posts them. */
  #channel: WorkerThreads.BroadcastChannel | undefined;
  #threads: typeof WorkerThreads | undefined;

  constructor(config: OtlpConfig, options: OtlpSinkOptions) {
    this.#config = config;
    this.#options = options;
    // Registering a listener loads nothing; the channel is opened when the app creates its first worker.
    process.on("worker", this.#onWorker);
  }

  append(event: UsageEvent): void {
    this.#enqueue(toWire(event));
  }

  /** Hands what is pending to the exporter thread and asks it to export now. Does not wait: see close(). */
  flush(): void {
    this.#handOver();
    if (this.#exporter !== undefined && this.#unflushed) this.#post({ kind: "flush", seq: ++this.#flushSeq });
  }

  /**
   * The exit path: takes what the app's workers posted, hands everything over, and waits for the
   * export, at most EXIT_WAIT_MS. Then stops the exporter thread; a later event starts a new one.
   */
  close(): void {
    this.#drainChannel();
    this.#handOver();
    const exporter = this.#exporter;
    if (exporter !== undefined && this.#unflushed) this.#waitForExport(exporter);
    process.off("worker", this.#onWorker);
    if (this.#channel !== undefined && this.#isMainThread()) {
      this.#channel.close();
      this.#channel = undefined;
    }
    if (exporter !== undefined) {
      this.#exporter = undefined;
      exporter.reports.close();
      void exporter.worker.terminate();
    }
  }

  #enqueue(event: WireEvent): void {
    this.#pending.push(event);
    if (this.#handOverScheduled) {
      if (this.#pending.length >= MAX_PENDING) this.#handOver();
      return;
    }
    this.#handOverScheduled = true;
    // The main thread's exporter exists: batch, so that the exporter thread wakes up a few times a
    // second rather than once per call (the exit path hands over the rest). A worker thread posts on
    // the next tick, because it may be terminated without an exit event; so does the first event,
    // which starts the exporter thread as early as possible.
    if (this.#exporter !== undefined) setTimeout(this.#handOverNow, HAND_OVER_MS).unref();
    else process.nextTick(this.#handOverNow);
  }

  // Callbacks of ours that run outside the pipeline's guard (timers, events): a bug here must not
  // become an uncaught exception in the app.
  readonly #guarded =
    <A extends unknown[]>(action: (...args: A) => void) =>
    (...args: A): void => {
      try {
        action(...args);
      } catch (error) {
        internalErrorReporter(this.#options.warn)(error);
      }
    };

  readonly #handOverNow = this.#guarded(() => this.#handOver());

  #handOver(): void {
    this.#handOverScheduled = false;
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    if (!this.#isMainThread()) {
      const batch: ChannelBatch = { events };
      this.#workerChannel().postMessage(batch);
      return;
    }
    if (this.#broken) return;
    if (this.#exporter === undefined) this.#exporter = this.#start();
    if (this.#exporter === undefined) return;
    this.#post({ kind: "events", events });
    this.#unflushed = true;
  }

  #post(message: ToExporter): void {
    this.#exporter?.worker.postMessage(message);
  }

  #start(): ExporterThread | undefined {
    const threads = this.#workerThreads();
    const fs = process.getBuiltinModule("node:fs");
    const candidates = this.#options.exporterPath !== undefined ? [this.#options.exporterPath] : EXPORTER_CANDIDATES.map((candidate) => new URL(candidate, import.meta.url));
    const path = candidates.find((candidate) => fs.existsSync(candidate));
    if (path === undefined) return this.#giveUp(`the exporter bundle ${String(candidates[0])} is missing (run npm run build)`);
    try {
      const shared = new SharedArrayBuffer(SHARED_SLOTS * Int32Array.BYTES_PER_ELEMENT);
      const { port1, port2 } = new threads.MessageChannel();
      const data: ExporterThreadData = { config: this.#config, shared, reports: port2 };
      const worker = new threads.Worker(path, {
        workerData: data,
        transferList: [port2],
        // Not the app's NODE_OPTIONS or flags: the thread must not run our preload (or the app's loaders).
        execArgv: [],
        env: { ...withoutNodeOptions(process.env), [ENV.disable]: "1" },
      });
      worker.unref();
      worker.on("error", (error) => {
        this.#broken = true;
        this.#exporter = undefined;
        this.#options.warn(`the metrics exporter stopped (${error instanceof Error ? error.message : String(error)}); usage metrics are no longer exported. The CSV log has every row.`);
      });
      port1.on("message", (message: FromExporter) => this.#options.warn(message.message));
      port1.unref();
      return { worker, slots: new Int32Array(shared), reports: port1 };
    } catch (error) {
      return this.#giveUp(error instanceof Error ? error.message : String(error));
    }
  }

  #giveUp(reason: string): undefined {
    this.#broken = true;
    this.#options.warn(`cannot start the metrics exporter (${reason}); usage metrics are not exported. The CSV log has every row.`);
    return undefined;
  }

  #waitForExport(exporter: ExporterThread): void {
    const seq = ++this.#flushSeq;
    this.#post({ kind: "flush", seq });
    this.#unflushed = false;
    const failing = Atomics.load(exporter.slots, SLOT.failing) === 1;
    const wait = failing ? Math.min(EXIT_WAIT_FAILING_MS, this.#options.exitWaitMillis ?? EXIT_WAIT_MS) : (this.#options.exitWaitMillis ?? EXIT_WAIT_MS);
    const deadline = Date.now() + wait;
    for (;;) {
      const flushed = Atomics.load(exporter.slots, SLOT.flushed);
      if (flushed >= seq) break;
      const left = deadline - Date.now();
      if (left <= 0) break;
      Atomics.wait(exporter.slots, SLOT.flushed, flushed, left);
    }
    // The exporter's warnings (why an export failed) cannot arrive through the event loop any more.
    const threads = this.#workerThreads();
    for (let report = threads.receiveMessageOnPort(exporter.reports); report !== undefined; report = threads.receiveMessageOnPort(exporter.reports)) {
      this.#options.warn((report.message as FromExporter).message);
    }
    // An outage was already reported (its warning says what is lost); otherwise a slow export is news.
    if (Atomics.load(exporter.slots, SLOT.flushed) < seq && Atomics.load(exporter.slots, SLOT.failing) === 0 && !this.#broken) {
      this.#options.warn(
        `the last usage metrics export to ${this.#config.url} did not finish within ${wait / 1000} s of exit; ` +
          `the tokens recorded since the previous export are missing there. The CSV log has every row.`,
      );
    }
  }

  /** In the main thread: from the first worker the app creates on, listen for the events its workers post. */
  readonly #onWorker = this.#guarded((worker: WorkerThreads.Worker): void => {
    if (this.#channel !== undefined || worker === this.#exporter?.worker || !this.#isMainThread()) return;
    this.#channel = new (this.#workerThreads().BroadcastChannel)(WORKER_CHANNEL);
    this.#channel.onmessage = this.#guarded((message: unknown) => this.#takeBatch((message as { data: unknown }).data));
    this.#channel.unref();
  });

  #drainChannel(): void {
    if (this.#channel === undefined || !this.#isMainThread()) return;
    const threads = this.#workerThreads();
    const channel = this.#channel as unknown as WorkerThreads.MessagePort;
    for (let batch = threads.receiveMessageOnPort(channel); batch !== undefined; batch = threads.receiveMessageOnPort(channel)) {
      this.#takeBatch(batch.message);
    }
  }

  #takeBatch(batch: unknown): void {
    const events = (batch as Partial<ChannelBatch> | null)?.events;
    if (!Array.isArray(events)) return;
    for (const event of events) if (isWireEvent(event)) this.#enqueue(event);
  }

  #workerChannel(): WorkerThreads.BroadcastChannel {
    if (this.#channel === undefined) {
      this.#channel = new (this.#workerThreads().BroadcastChannel)(WORKER_CHANNEL);
      this.#channel.unref();
    }
    return this.#channel;
  }

  #isMainThread(): boolean {
    return this.#workerThreads().isMainThread;
  }

  // node:worker_threads loads node:stream: 3 ms that only processes exporting metrics pay, at their first event.
  #workerThreads(): typeof WorkerThreads {
    this.#threads ??= process.getBuiltinModule("node:worker_threads");
    return this.#threads;
  }
}

function withoutNodeOptions(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy["NODE_OPTIONS"];
  return copy;
}
