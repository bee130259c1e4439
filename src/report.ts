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
