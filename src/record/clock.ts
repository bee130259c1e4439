/**
 * Wall-clock time with microseconds. `Date` has milliseconds only; the sub-millisecond part comes
 * from the monotonic clock (`performance.timeOrigin + performance.now()`). The two are re-anchored
 * only when they disagree by more than a clock step would explain (NTP steps, suspend), and small
 * disagreements never make the time go backwards, so rows logged in order keep their order.
 */
export class MicrosecondClock {
  static readonly #STEP_MILLIS = 20;
  // Read on first use: the global `performance` loads node:perf_hooks, 1 ms of start-up.
  #offsetMillis: number | undefined;
  #lastMicros = 0;

  nowMicros(): number {
    const wall = Date.now();
    this.#offsetMillis ??= performance.timeOrigin;
    let precise = performance.now() + this.#offsetMillis;
    if (Math.abs(precise - wall) > MicrosecondClock.#STEP_MILLIS) {
      this.#offsetMillis = wall - performance.now();
      precise = wall;
    }
    let micros = Math.floor(precise * 1000);
    // A backward step smaller than the tolerance is jitter between the two clocks, not a clock change.
    if (micros < this.#lastMicros && this.#lastMicros - micros <= MicrosecondClock.#STEP_MILLIS * 1000) {
      micros = this.#lastMicros;
    }
    this.#lastMicros = micros;
    return micros;
  }
}
