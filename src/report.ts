/**
 * Our only voice: one line on stderr per distinct problem, prefixed with the package name.
 * Never stdout (the app's output must stay byte-for-byte the same), never a throw.
 */
export interface Reporter {
  warn(message: string): void;
  info(message: string): void;
}

const PREFIX = "mistral-usage-log: ";
const MAX_DISTINCT_WARNINGS = 100;

export function stderrReporter(write: (line: string) => void = writeStderr): Reporter {
  const seen = new Set<string>();
  return {
    warn(message) {
      if (seen.has(message) || seen.size >= MAX_DISTINCT_WARNINGS) return;
      seen.add(message);
      write(`${PREFIX}${message}\n`);
    },
    info(message) {
      write(`${PREFIX}${message}\n`);
    },
  };
}

function writeStderr(line: string): void {
  try {
    process.stderr.write(line);
  } catch {
    // stderr closed: nowhere left to report to.
  }
}

/** Reports a bug of ours (an exception where none was expected) as one warning, never as a throw. */
export function internalErrorReporter(warn: (message: string) => void): (error: unknown) => void {
  return (error) => warn(`internal error, please report it: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
}

/**
 * Lists the configuration warnings already said higher up in this process tree, one per line: by
 * `mistral-usage run`, or by the preload's main thread. Worker threads and child processes read the
 * same environment, so without it one bad value was said once per process and per thread (a pool of
 * 16 workers: 17 identical lines; `mistral-usage run -- npm start`: three).
 */
export const SAID_ENV = "MISTRAL_USAGE_SAID";

/**
 * Says each configuration problem not already said higher up (see SAID_ENV), and adds it to `env`
 * (process.env, or a command's environment), which the threads and processes started later inherit.
 * A different bad value in a child's own environment is still said there.
 */
export function sayConfigWarnings(warnings: readonly string[], warn: (message: string) => void, env: Record<string, string | undefined>): void {
  if (warnings.length === 0) return;
  const said = env[SAID_ENV]?.split("\n") ?? [];
  const fresh = warnings.filter((warning) => !said.includes(warning));
  for (const warning of fresh) warn(warning);
  if (fresh.length > 0) env[SAID_ENV] = [...said, ...fresh].join("\n");
}
