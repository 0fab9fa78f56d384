/**
 * No process can stall us: a process that holds its own mmap lock for
 * seconds at a time (test/hardening/fixtures/lock-holder.py: merge-any off
 * over a large sparse mapping, sized on this CPU until one window lasts as
 * long as the commands need) makes every read of its smaps and ksm_stat
 * wait. status, top and every exporter scrape must answer while it holds the
 * lock, and name it as skipped.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { runCli, spawnCli } from '../helpers/cli.js';
import { requireKsm, unsanitizedEnv, withAsanOptions } from '../helpers/ksm.js';

const FIXTURES_HARDENING = path.join(__dirname, 'fixtures');

/**
 * How long each lock window lasts at the least. The walk's speed depends on
 * the CPU (about 15 s per TiB on one machine, far less on a faster one), so
 * the holder sizes its mapping until a window lasts as long as asked: at least
 * this, and at least what the commands under test need here (measured first,
 * unlocked: a sanitized node starts far slower than a plain one).
 */
const MIN_WINDOW_SECONDS = 12;
/**
 * The commands' environment. In the sanitized run, LeakSanitizer checks at
 * exit by stopping every thread, and a reader thread still waiting in the
 * kernel for the holder's lock cannot stop until the lock is let go: the
 * command would answer in time and then not exit. So the leak check is off
 * for these commands (AddressSanitizer itself stays on); lifetime.test.ts
 * and the rest of the run check procread's leaks.
 */
const CLI_ENV = withAsanOptions('detect_leaks=0');

/** The per-process deadline the commands give a stalled process (lib/kernel/proc-read.ts). */
const DEADLINE_SECONDS = 2;

/**
 * The window the tests need: the slowest test runs two commands in one
 * window, and each waits out the deadline once for the holder; twice that
 * again for a loaded machine.
 */
async function windowNeeded(): Promise<number> {
  const timed = async (args: string[]): Promise<number> => {
    const started = performance.now();
    await runCli(args, CLI_ENV);
    return (performance.now() - started) / 1000;
  };
  const slowest = Math.max(
    await timed(['status', '--all', '--json']),
    await timed(['doctor', '--json']),
    await timed(['top', '--json', '--all', '--iterations', '2', '--interval', '200ms']),
  );
  return Math.max(MIN_WINDOW_SECONDS, 2 * 2 * (slowest + DEADLINE_SECONDS));
}

interface Holder {
  child: ChildProcessWithoutNullStreams;
  /** Lines the holder printed so far. */
  lines: string[];
  /** Resolves at the next "locking" line. */
  nextLock(): Promise<void>;
  /** The measured length of a window, in seconds. */
  windowSeconds: number;
}

function startHolder(windowSeconds: number): Promise<Holder> {
  // Never under the sanitizer's preload: its 16 TiB shadow would make each lock window minutes long.
  const child = spawn('python3', [path.join(FIXTURES_HARDENING, 'lock-holder.py'), String(windowSeconds)], { stdio: 'pipe', env: unsanitizedEnv() });
  const lines: string[] = [];
  const waiters: Array<() => void> = [];
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`lock holder exited (${code}): ${lines.join(' | ')}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      if (line === 'locking') waiters.splice(0).forEach((wake) => wake());
      const ready = /^ready (\S+) /.exec(line);
      if (ready) resolve({ child, lines, windowSeconds: Number(ready[1]), nextLock: () => new Promise((wake) => waiters.push(wake)) });
    });
  });
}

/**
 * Runs `fn` inside one of the holder's lock windows and checks that it was
 * over before the window closed: the answer did not wait for the lock.
 */
async function whileLocked<T>(holder: Holder, fn: () => Promise<T>): Promise<T> {
  await holder.nextLock();
  const unlocked = (): number => holder.lines.filter((line) => line.startsWith('unlocked')).length;
  const unlockedBefore = unlocked();
  const started = performance.now();
  const result = await fn();
  const took = ((performance.now() - started) / 1000).toFixed(1);
  expect(unlocked(), `answered only after the holder released its mmap lock (took ${took} s; windows of ${holder.windowSeconds} s)`).toBe(unlockedBefore);
  return result;
}

describe('a process holding its mmap lock for seconds', () => {
  let holder: Holder | undefined;
  beforeAll(async () => {
    // Each test gates itself on KSM (requireKsm); without it there is nothing to hold.
    if (inject('ksm').available) holder = await startHolder(await windowNeeded());
  }, 300_000);
  afterAll(() => {
    holder?.child.kill('SIGKILL');
  });

  it('node-ksm status --no-fair-share answers and names it as stalled', async (ctx) => {
    requireKsm(ctx);
    const result = await whileLocked(holder!, () => runCli(['status', '--no-fair-share', '--all', '--json'], CLI_ENV));
    expect(result.code, result.stderr).toBe(0);
    const status = JSON.parse(result.stdout) as { stalled: Array<{ pid: number; comm: string }> };
    expect(status.stalled).toContainEqual({ pid: holder!.child.pid, comm: 'python3' });
  });

  it('node-ksm status (with the fair share) answers, twice in one window, and names it', async (ctx) => {
    requireKsm(ctx);
    const [first, second] = await whileLocked(holder!, async () => [
      await runCli(['status', '--all', '--json'], CLI_ENV),
      await runCli(['status', '--all', '--json'], CLI_ENV),
    ]);
    for (const result of [first!, second!]) {
      expect(result.code, result.stderr).toBe(0);
      expect((JSON.parse(result.stdout) as { stalled: Array<{ pid: number }> }).stalled.map((p) => p.pid)).toContain(holder!.child.pid);
    }
  });

  it('node-ksm top --json refreshes while it holds the lock', async (ctx) => {
    requireKsm(ctx);
    const result = await whileLocked(holder!, () => runCli(['top', '--json', '--all', '--iterations', '2', '--interval', '200ms'], CLI_ENV));
    expect(result.code, result.stderr).toBe(0);
    const documents = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { stalled: Array<{ pid: number }> });
    expect(documents).toHaveLength(2);
    for (const document of documents) expect(document.stalled.map((p) => p.pid)).toContain(holder!.child.pid);
  });

  it('node-ksm doctor answers while it holds the lock and names it as skipped', async (ctx) => {
    requireKsm(ctx);
    const result = await whileLocked(holder!, () => runCli(['doctor', '--json'], CLI_ENV));
    expect([0, 1], result.stderr).toContain(result.code);
    const { findings } = JSON.parse(result.stdout) as { findings: Array<{ code: string; message: string }> };
    const skipped = findings.find((f) => f.code === 'PROCESSES_SKIPPED');
    expect(skipped?.message).toContain(`${holder!.child.pid} (python3)`);
  });

  it('every exporter scrape answers while it holds the lock', async (ctx) => {
    requireKsm(ctx);
    const exporter = spawnCli(['exporter', '--port', '0', '--json'], CLI_ENV);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: exporter.stdout! }).once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
        exporter.once('exit', (code) => reject(new Error(`exporter exited ${code}`)));
      });
      const scrape = (): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          http.get(url, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          }).on('error', reject);
        });
      const scrapes = await whileLocked(holder!, async () => [await scrape(), await scrape(), await scrape()]);
      for (const { status, body } of scrapes) {
        expect(status).toBe(200);
        expect(body).toMatch(/^ksm_pages_sharing \d+$/m);
        expect(body).toMatch(/^ksm_processes_stalled [1-9]\d*$/m);
      }
    } finally {
      exporter.kill('SIGTERM');
    }
  });
});
