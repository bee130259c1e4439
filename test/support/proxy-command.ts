/**
 * `mistral-usage proxy` as a running child process, for the tests that point clients at it: started
 * on a free loopback port, stopped by a signal (killed after the test if still running).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { TestContext } from 'node:test';
import { cliPath } from '../cli/cli-helpers.js';
import { childEnv } from './run-app.js';

export interface RunningProxy {
  url: string;
  child: ChildProcessWithoutNullStreams;
  firstLine: string;
  /** Sends `signal` and resolves with the exit code and everything printed. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

export async function startProxy(t: TestContext, cwd: string, args: string[], env: Record<string, string>): Promise<RunningProxy> {
  const child = spawn(process.execPath, [cliPath, 'proxy', '--listen', '127.0.0.1:0', ...args], { cwd, env: childEnv(env) });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const firstLine = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')));
    });
    void exited.then(() => reject(new Error(`proxy exited early: ${stderr}`)));
  });
  const url = /^listening on (http:\/\/\S+) /.exec(firstLine)?.[1];
  assert.ok(url !== undefined, firstLine);
  return {
    url,
    child,
    firstLine,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
}
