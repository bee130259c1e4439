// Loaded with --import by bench/cli.ts: writes the process's peak RSS (KiB) to $BENCH_RSS_FILE at
// exit. On Linux it is VmHWM, which exec resets; getrusage's maxRSS is not reset by exec and so
// can report the parent's size at the fork (the bench runner's, with its generated log).
import { readFileSync, writeFileSync } from "node:fs";

process.on("exit", () => {
  const file = process.env.BENCH_RSS_FILE;
  if (!file) return;
  let kib = process.resourceUsage().maxRSS;
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (hwm) kib = Number(hwm[1]);
  } catch {
    // Not Linux: getrusage it is.
  }
  writeFileSync(file, String(kib));
});
