import type { UsageEvent } from "../record/usage-event.js";

/**
 * Where usage events go: the CSV log, metrics... A sink never throws into the app; a problem of
 * its own is reported through the `warn` it was given.
 */
export interface UsageSink {
  /** Takes one event. May write at once or batch; the event must not be lost once this returns. */
  append(event: UsageEvent): void;
  /**
   * Writes everything taken so far, synchronously. A sink may keep events a moment longer when it
   * cannot write now (the CSV log while another process repairs the file), never past `close()`.
   */
  flush(): void;
  /**
   * The exit path: writes everything, synchronously and within a bounded time, then releases what
   * the sink holds (descriptors, timers, threads). It may be appended to again afterwards.
   */
  close(): void;
}

/** One sink that hands every event to each of `sinks`, in order. A sink that throws does not stop the others. */
export function fanOut(sinks: readonly UsageSink[], onInternalError: (error: unknown) => void): UsageSink {
  const each = (action: (sink: UsageSink) => void): void => {
    for (const sink of sinks) {
      try {
        action(sink);
      } catch (error) {
        onInternalError(error);
      }
    }
  };
  return {
    append: (event) => each((sink) => sink.append(event)),
    flush: () => each((sink) => sink.flush()),
    close: () => each((sink) => sink.close()),
  };
}
