import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { formatTimestamp } from "../../../src/log/format.js";
import { MicrosecondClock } from "../../../src/record/clock.js";

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/;

describe("MicrosecondClock", () => {
  test("gives integer microseconds that format to the mandatory form", () => {
    const clock = new MicrosecondClock();
    const micros = clock.nowMicros();
    assert.ok(Number.isSafeInteger(micros));
    assert.match(formatTimestamp(micros), TIMESTAMP);
  });

  test("stays within 2 ms of Date.now()", () => {
    const clock = new MicrosecondClock();
    for (let i = 0; i < 10_000; i++) {
      const before = Date.now();
      const millis = clock.nowMicros() / 1000;
      const after = Date.now();
      assert.ok(millis >= before - 2 && millis <= after + 2, `${millis} not within 2 ms of [${before}, ${after}]`);
    }
  });

  test("re-anchors when the monotonic clock lags the wall clock by more than a clock step", (t) => {
    const wall = 1_800_000_000_000;
    t.mock.method(Date, "now", () => wall);
    t.mock.method(performance, "now", () => wall - 50 - performance.timeOrigin);
    assert.equal(new MicrosecondClock().nowMicros(), wall * 1000);
  });

  test("keeps the sub-millisecond digits when the two clocks disagree by jitter only", (t) => {
    const wall = 1_800_000_000_000;
    t.mock.method(Date, "now", () => wall);
    t.mock.method(performance, "now", () => wall - 5 + 0.123456 - performance.timeOrigin);
    assert.equal(new MicrosecondClock().nowMicros(), (wall - 5) * 1000 + 123);
  });

  test(
    "never goes backwards when the monotonic clock runs ahead of Date.now()",
    (t) => {
      const wall = 1_800_000_000_000;
      const monotonic = [wall + 0.5, wall + 1.2]; // Date.now() has not ticked yet
      t.mock.method(Date, "now", () => wall);
      t.mock.method(performance, "now", () => monotonic.shift()! - performance.timeOrigin);
      const clock = new MicrosecondClock();
      const first = clock.nowMicros(); // ≈ wall + 500 µs
      const second = clock.nowMicros(); // re-anchored to wall: 500 µs earlier
      assert.ok(second >= first, `${second} < ${first}`);
    },
  );

  test(
    "is non-decreasing over many calls (real clocks)",
    () => {
      const clock = new MicrosecondClock();
      let previous = clock.nowMicros();
      for (let i = 0; i < 500_000; i++) {
        const now = clock.nowMicros();
        assert.ok(now >= previous, `call ${i}: ${now} < ${previous}`);
        previous = now;
      }
    },
  );
});
