/**
 * Bun and Deno for the tests of runtimes the preload cannot tap: `.ci/runtimes.sh` unpacks the
 * binaries the npm registry ships (@oven/bun-linux-x64, @deno/linux-x64-glibc) into a cache folder.
 * Without them the tests skip locally and fail in CI.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type Runtime = 'bun' | 'deno';

const IN_PACKAGE: Record<Runtime, string> = { bun: join('bin', 'bun'), deno: 'deno' };

/** Where `.ci/runtimes.sh` puts the binary (or `$BUN_BIN` / `$DENO_BIN`). */
export function runtimeBinary(runtime: Runtime): string | undefined {
  const given = process.env[`${runtime.toUpperCase()}_BIN`];
  if (given !== undefined && given !== '') return given;
  const dir = process.env['MISTRAL_USAGE_RUNTIMES_DIR'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'mistral-usage-log', 'runtimes');
  const bin = join(dir, runtime, 'package', IN_PACKAGE[runtime]);
  return existsSync(bin) ? bin : undefined;
}

/** Why `runtime`'s tests cannot run here, or undefined when they can. In CI a missing binary is a failure, not a skip. */
export function runtimeMissing(runtime: Runtime): string | undefined {
  if (runtimeBinary(runtime) !== undefined) return undefined;
  const message = `${runtime} is not installed: run .ci/runtimes.sh (or set ${runtime.toUpperCase()}_BIN) to run the ${runtime} tests`;
  if (process.env['CI'] === 'true' || process.env['CI'] === '1') throw new Error(message);
  return message;
}
