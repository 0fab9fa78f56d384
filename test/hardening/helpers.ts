/** Runs a hardening fixture in its own node process and collects what it said. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { unsanitizedEnv } from '../helpers/ksm.js';

export const HARDENING_FIXTURES = path.join(__dirname, 'fixtures');

export interface FixtureRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last JSON line printed on stdout, if any. */
  result: Record<string, unknown> | undefined;
}

export { SANITIZED } from '../helpers/ksm.js';

/**
 * The environment for a process that turns merge-any on and later off: under
 * test:asan, the normal build without the sanitizer (see unsanitizedEnv()).
 * A process that never had merge-any, like the vitest worker, still runs
 * sanitized and exercises the sanitized exec wrapper.
 */
export function mergeAnyEnv(): NodeJS.ProcessEnv {
  return unsanitizedEnv();
}

/**
 * Runs fixtures/FILE in node; `prefix` is a command node is started
 * through (e.g. unshare with a shell that mounts something first and then
 * execs "$@").
 */
export function runFixture(
  file: string,
  args: string[],
  nodeArgs: string[] = [],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 110_000,
  prefix: string[] = [],
): Promise<FixtureRun> {
  const argv = [...prefix, process.execPath, ...nodeArgs, path.join(HARDENING_FIXTURES, file), ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const last = stdout.trim().split('\n').filter((line) => line.startsWith('{')).pop();
      let result: Record<string, unknown> | undefined;
      try {
        result = last === undefined ? undefined : (JSON.parse(last) as Record<string, unknown>);
      } catch {
        result = undefined;
      }
      resolve({ code, signal, stdout, stderr, result });
    });
  });
}
