// Loaded with --import by bench/cli.ts: at exit, writes the process's peak RSS (KiB) and CPU time
// (user + system, µs) to $BENCH_RSS_FILE as JSON. On Linux the peak is VmHWM, which exec resets;
// getrusage's maxRSS is not reset by exec and so can report the parent's size at the fork (the
// bench runner's, with its generated log).
import { readFileSync, writeFileSync } from "node:fs";

process.on("exit", () => {
  const file = process.env.BENCH_RSS_FILE;
  if (!file) return;
  const usage = process.resourceUsage();
  let rssKiB = usage.maxRSS;
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (hwm) rssKiB = Number(hwm[1]);
  } catch {
    // Not Linux: getrusage it is.
  }
  writeFileSync(file, JSON.stringify({ rssKiB, cpuMicros: usage.userCPUTime + usage.systemCPUTime }));
});
