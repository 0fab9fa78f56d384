/**
 * Test helpers: gate tests on real KSM, and read the kernel's files raw,
 * independently of the code under test.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inject, type TestContext } from 'vitest';

export const ROOT = path.join(__dirname, '..', '..');
export const DIST = path.join(ROOT, 'dist', 'index.js');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

/**
 * Skips the test when this machine cannot run KSM for real (not root, no
 * CONFIG_KSM), printing why; with NODE_KSM_REQUIRE=1 (CI) that is a failure.
 */
export function requireKsm(ctx: TestContext): void {
  const ksm = inject('ksm');
  if (ksm.available) return;
  if (process.env.NODE_KSM_REQUIRE === '1') {
    throw new Error(`NODE_KSM_REQUIRE=1 but KSM cannot be used here: ${ksm.reason}`);
  }
  console.warn(`skipped "${ctx.task.name}": ${ksm.reason}`);
  ctx.skip(ksm.reason);
}

/** /sys/kernel/mm/ksm/NAME as a number, read raw. */
export function sysfsNumber(name: string): number {
  return Number(fs.readFileSync(`/sys/kernel/mm/ksm/${name}`, 'utf8').trim());
}

/** /proc/PID/ksm_stat as the kernel printed it: key -> raw value. */
export function rawKsmStat(pid: number | 'self' = 'self'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/${pid}/ksm_stat`, 'utf8').split('\n')) {
    const match = /^(\w+):?\s+(\S+)$/.exec(line.trim());
    if (match) out[match[1]!] = match[2]!;
  }
  return out;
}

/** Sum of the `KSM:` lines (bytes) of smaps for VMAs overlapping [start, end). */
export function rawSmapsRange(pid: number | 'self', start: bigint, end: bigint): { ksmBytes: number; flags: string[][] } {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  let inRange = false;
  let ksmBytes = 0;
  const flags: string[][] = [];
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (header) {
      const s = BigInt(`0x${header[1]}`);
      const e = BigInt(`0x${header[2]}`);
      inRange = s < end && e > start;
      continue;
    }
    if (!inRange) continue;
    const ksm = /^KSM:\s+(\d+) kB/.exec(line);
    if (ksm) ksmBytes += Number(ksm[1]) * 1024;
    if (line.startsWith('VmFlags:')) flags.push(line.slice(8).trim().split(/\s+/));
  }
  return { ksmBytes, flags };
}

/** Resolves after `scans` full scans that began after the call (two: merged). */
export async function waitFullScans(scans = 2, timeoutMs = 90_000): Promise<void> {
  const target = sysfsNumber('full_scans') + scans + 1;
  const deadline = Date.now() + timeoutMs;
  while (sysfsNumber('full_scans') < target) {
    if (Date.now() > deadline) throw new Error(`KSM did not complete ${scans} full scans in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface Holder {
  child: ChildProcess;
  pid: number;
  /** Sends a command and resolves with the reply. */
  send<T = unknown>(message: Record<string, unknown>): Promise<T>;
  kill(): Promise<void>;
}

/** Starts test/fixtures/NAME (a child using the built package) and waits for its `ready`. */
export async function startFixture(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Holder & { ready: Record<string, unknown> }> {
  const child = fork(path.join(FIXTURES, name), args, {
    env: { ...process.env, ...env },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const replies: Array<(message: unknown) => void> = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (message) => replies.shift()?.(message));
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    replies.push((message) => resolve(message as Record<string, unknown>));
    child.once('exit', (code, signal) => reject(new Error(`${name} exited before ready (${code ?? signal})`)));
  });
  return {
    child,
    pid: child.pid!,
    ready,
    send<T>(message: Record<string, unknown>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        replies.push((reply) => {
          const r = reply as { error?: string };
          if (r && typeof r === 'object' && 'error' in r && r.error) reject(new Error(r.error));
          else resolve(reply as T);
        });
        child.send(message);
      });
    },
    async kill(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
