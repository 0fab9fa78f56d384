/**
 * Demo test helpers: run `npm run demo` as a user does (the real script in
 * package.json), watch its output, and read the KSM knobs raw.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import { constants } from 'node:os';
import * as path from 'node:path';

import { ROOT } from './ksm.js';

export const KSM_DIR = '/sys/kernel/mm/ksm';

export interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningDemo {
  child: ChildProcess;
  done: Promise<DemoRun>;
  stdout(): string;
  stderr(): string;
}

const running: ChildProcess[] = [];

/** SIGKILL to every process (group) started here and still alive: for afterEach. */
export function killDemos(): void {
  for (const child of running.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
}

/** Starts `command args` in the repository, in its own process group (a terminal's job: Ctrl-C reaches all of it). */
export function start(command: string, args: string[], options: SpawnOptions = {}): RunningDemo {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<DemoRun>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stdout: () => stdout, stderr: () => stderr };
}

/**
 * `npm run -s demo -- ...args`: the npm running the tests where there is
 * one (npm_execpath), else npm from PATH. -s keeps npm's own banner out of
 * stdout, so --json output parses as it is.
 */
export function npmDemoCommand(args: string[]): [string, string[]] {
  const npm = process.env.npm_execpath;
  const npmArgs = ['run', '-s', 'demo', '--', ...args];
  return npm !== undefined && npm.endsWith('.js') ? [process.execPath, [npm, ...npmArgs]] : ['npm', npmArgs];
}

export function npmDemo(args: string[], env: NodeJS.ProcessEnv = {}): RunningDemo {
  const [command, commandArgs] = npmDemoCommand(args);
  return start(command, commandArgs, { env: { ...process.env, npm_config_update_notifier: 'false', ...env } });
}

/**
 * The status a shell reports for the run: the exit code, or 128 + the
 * signal's number. On Ctrl-C npm's shell dies of the SIGINT itself while the
 * demo exits 130 (having put its knobs back): a shell shows 130 either way.
 */
export function shellStatus(run: DemoRun): number | undefined {
  if (run.code !== null) return run.code;
  return run.signal === null ? undefined : 128 + constants.signals[run.signal];
}

export async function until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The worker pids from the demo's "workers A, B built their tables" line. */
export function workerPids(text: string): number[] {
  const match = /workers ([\d, ]+) built their tables/.exec(text);
  if (!match) throw new Error(`no worker pids in:\n${text}`);
  return match[1]!.split(',').map((pid) => Number(pid.trim()));
}

/** Every writable file of a KSM sysfs directory (the knobs), as raw text. */
export function rawKnobs(dir = KSM_DIR): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, name);
    if ((fs.statSync(file).mode & 0o200) === 0) continue;
    out[name] = fs.readFileSync(file, 'utf8').trim();
  }
  return out;
}
