/**
 * Test helpers: gate tests on real KSM, and read the kernel's files raw,
 * independently of the code under test.
 */
import { execFile, execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { inject, type TestContext } from 'vitest';

import { needs } from './needs.js';

export const ROOT = path.join(__dirname, '..', '..');
export const DIST = path.join(ROOT, 'dist', 'index.js');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

export { needs };

/** The test needs KSM for real (Linux, CONFIG_KSM, root, a writable sysfs): see needs(). */
export function requireKsm(ctx: TestContext): void {
  const ksm = inject('ksm');
  needs(ctx, ksm.available, `KSM for real (${ksm.reason})`);
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

/** Sums of the `KSM:` and `Rss:` lines (bytes) of smaps for VMAs overlapping [start, end), and their VmFlags. */
export function rawSmapsRange(pid: number | 'self', start: bigint, end: bigint): { ksmBytes: number; rssBytes: number; flags: string[][] } {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  let inRange = false;
  let ksmBytes = 0;
  let rssBytes = 0;
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
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) rssBytes += Number(rss[1]) * 1024;
    if (line.startsWith('VmFlags:')) flags.push(line.slice(8).trim().split(/\s+/));
  }
  return { ksmBytes, rssBytes, flags };
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
export async function startFixture(
  name: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  options: { sanitized?: boolean } = {},
): Promise<Holder & { ready: Record<string, unknown> }> {
  const child = fork(path.join(FIXTURES, name), args, {
    // `sanitized: false`: a plain node even in the sanitized run, where what is
    // under test is the fixture's memory layout (ASan replaces malloc).
    env: { ...(options.sanitized === false ? unsanitizedEnv() : process.env), ...env },
    // Not the test worker's node flags (vitest's): a fixture is a plain node process.
    execArgv: [],
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

/** A pid no process has now (pid_max bounds them; the top of the range is rarely in use). */
export function unusedPid(): number {
  let pid = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8')) - 1;
  while (fs.existsSync(`/proc/${pid}`)) pid--;
  return pid;
}

/** Bytes per page, from getconf: not from the code under test. */
export const PAGE = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());

/**
 * Where a view's memory starts, asked of the addon directly (viewRange
 * advises nothing): the tests then check that address against smaps.
 */
export function addressOf(view: ArrayBuffer | ArrayBufferView): bigint {
  const requireCjs = createRequire(path.join(ROOT, 'package.json'));
  const native = requireCjs('node-gyp-build')(ROOT) as { viewRange(view: unknown): { address: bigint } };
  return native.viewRange(view).address;
}

/** A process's start time in clock ticks: field 22 of /proc/PID/stat, read raw (the command in parentheses may hold spaces). */
export function rawStartTimeTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/** A label file's text as publishLabels() writes it (lib/kernel/label-file.ts), for process `pid` started at `startTimeTicks`. */
export function labelFileText(pid: number, startTimeTicks: number, labels: Array<{ start: bigint; end: bigint; label: string }>): string {
  return JSON.stringify({
    kind: 'node-ksm/labels',
    version: 1,
    pid,
    startTimeTicks,
    labels: labels.map(({ start, end, label }) => ({ start: start.toString(16), end: end.toString(16), label })),
  });
}

/**
 * Pages of [start, end) in `pid` that map a KSM page, page by page from
 * pagemap's PFNs and /proc/kpageflags (KPF_KSM, bit 21): needs root. Unlike
 * smaps it does not depend on where the kernel joined adjacent VMAs.
 */
export function rawKsmPages(pid: number | 'self', start: bigint, end: bigint): number {
  const page = BigInt(PAGE);
  const count = Number((end - start) / page);
  const entries = Buffer.alloc(count * 8);
  const flags = Buffer.alloc(8);
  const map = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  const kpageflags = fs.openSync('/proc/kpageflags', 'r');
  try {
    fs.readSync(map, entries, 0, entries.length, Number((start / page) * 8n));
    let ksm = 0;
    for (let i = 0; i < count; i++) {
      const entry = entries.readBigUInt64LE(i * 8);
      if ((entry & (1n << 63n)) === 0n) continue;
      fs.readSync(kpageflags, flags, 0, 8, Number((entry & ((1n << 55n) - 1n)) * 8n));
      if ((flags.readBigUInt64LE(0) & (1n << 21n)) !== 0n) ksm++;
    }
    return ksm;
  } finally {
    fs.closeSync(map);
    fs.closeSync(kpageflags);
  }
}

export interface RawVma {
  start: bigint;
  end: bigint;
  perms: string;
  flags: string[];
  /** The `KSM:` line in bytes (0 where the kernel prints none). */
  ksmBytes: number;
  rssBytes: number;
}

/** Every VMA of /proc/PID/smaps, read raw. */
export function rawVmas(pid: number | 'self' = 'self'): RawVma[] {
  const vmas: RawVma[] = [];
  let current: RawVma | undefined;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) /.exec(line);
    if (header) {
      current = { start: BigInt(`0x${header[1]}`), end: BigInt(`0x${header[2]}`), perms: header[3]!, flags: [], ksmBytes: 0, rssBytes: 0 };
      vmas.push(current);
      continue;
    }
    if (!current) continue;
    const kb = /^(KSM|Rss):\s+(\d+) kB/.exec(line);
    if (kb) {
      if (kb[1] === 'KSM') current.ksmBytes = Number(kb[2]) * 1024;
      else current.rssBytes = Number(kb[2]) * 1024;
    }
    if (line.startsWith('VmFlags:')) current.flags = line.slice(8).trim().split(/\s+/);
  }
  return vmas;
}

/** The VMA that holds byte `address`, or undefined where nothing is mapped. */
export function rawVmaAt(address: bigint, pid: number | 'self' = 'self'): RawVma | undefined {
  return rawVmas(pid).find((vma) => vma.start <= address && address < vma.end);
}

export function roundUp(value: bigint, page = BigInt(PAGE)): bigint {
  return ((value + page - 1n) / page) * page;
}

export function roundDown(value: bigint, page = BigInt(PAGE)): bigint {
  return (value / page) * page;
}

/** Runs `node [flags] -e script` with the built package at hand; resolves with its stdout parsed as JSON. */
export function runNode<T = Record<string, unknown>>(script: string, flags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...flags, '-e', script],
      { cwd: ROOT, env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) return reject(new Error(`${error.message}\nstderr: ${stderr}`));
        try {
          resolve(JSON.parse(stdout) as T);
        } catch {
          reject(new Error(`child printed no JSON: ${stdout}\nstderr: ${stderr}`));
        }
      },
    );
  });
}

/**
 * Runs `fn`; when it failed with ERR_KSM_NOT_RUNNING because another run on
 * this machine stopped KSM for a moment (their serial tests do), waits for
 * run=1 and tries again, up to `timeoutMs`. Only for tests that are not
 * about a stopped KSM.
 */
export async function retryIfStopped<T>(fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ERR_KSM_NOT_RUNNING' || Date.now() > deadline) throw error;
      console.warn('KSM was stopped by another run on this machine; waiting for run=1 to try again');
      while (sysfsNumber('run') !== 1) {
        if (Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

/** The rejection of `fn()`, retried as retryIfStopped() when it was ERR_KSM_NOT_RUNNING; fails if it resolves. */
export function rejectionOf(fn: () => Promise<unknown>): Promise<unknown> {
  return retryIfStopped(() =>
    fn().then(
      () => {
        throw new Error('expected a rejection');
      },
      (error: unknown) => {
        if ((error as { code?: unknown }).code === 'ERR_KSM_NOT_RUNNING') throw error;
        return error;
      },
    ),
  );
}

/**
 * Resolves once `check()` holds, polling; fails when `maxFullScans` full
 * scans (counted raw) have passed without it, or after `timeoutMs`. A merge
 * that works is seen within two full scans; the slack absorbs other runs on
 * this machine stopping KSM (or unmerging everything with run=2) for a moment.
 */
export async function untilKsm(check: () => boolean, what: string, maxFullScans = 8, timeoutMs = 90_000): Promise<void> {
  const start = sysfsNumber('full_scans');
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    const scans = sysfsNumber('full_scans') - start;
    if (scans > maxFullScans || Date.now() > deadline) {
      throw new Error(`${what}: not so after ${scans} full scans`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Running under `npm run test:asan` (scripts/asan.sh preloads clang's ASan runtime). */
export const SANITIZED = /libclang_rt\.asan/.test(process.env.LD_PRELOAD ?? '');

/**
 * `env` without test:asan's settings: the child runs the normal build with
 * no sanitizer runtime. For programs that are not under test (python3
 * fixtures, whose own shadow memory would be estimated too) and for node
 * processes that switch merge-any on and off (PR_SET_MEMORY_MERGE 0 walks
 * every page of every VMA, and ASan's 16 TiB shadow makes that take hours).
 * Outside test:asan it returns `env` as it is.
 */
export function unsanitizedEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (!SANITIZED) return env;
  const rest = { ...env };
  for (const name of ['LD_PRELOAD', 'NODE_KSM_PREBUILD', 'ASAN_OPTIONS', 'LSAN_OPTIONS', 'UBSAN_OPTIONS']) delete rest[name];
  return rest;
}

/** `process.env` with extra ASan options under test:asan (later options win); as it is otherwise. */
export function withAsanOptions(options: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return SANITIZED ? { ...env, ASAN_OPTIONS: `${env.ASAN_OPTIONS ?? ''}:${options}` } : env;
}

/**
 * LD_PRELOAD for a child that preloads `library` of its own: under test:asan
 * the ASan runtime must stay first (the sanitized addon needs it).
 */
export function preloadWith(library: string): string {
  return SANITIZED ? `${process.env.LD_PRELOAD}:${library}` : library;
}

/**
 * The first line `child` prints on stdout, without its newline. A pipe
 * delivers what a child writes in pieces (under PYTHONUNBUFFERED=1 python's
 * print() is one write per argument), so a line is only whole at its
 * newline. Rejects, naming `what` and what it had printed, if the child exits
 * or `timeoutMs` passes first.
 */
export function firstLine(child: ChildProcess, what: string, timeoutMs = 60_000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let text = '';
    const done = (error?: Error): void => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(text.slice(0, text.indexOf('\n')));
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('utf8');
      if (text.includes('\n')) done();
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      done(new Error(`${what} exited (${code ?? signal}) before its first line; it printed ${JSON.stringify(text)}`));
    const timer = setTimeout(() => done(new Error(`${what} printed no whole line in ${timeoutMs} ms; it printed ${JSON.stringify(text)}`)), timeoutMs);
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/** test/fixtures/sparse-mapping.py running: its 64 GiB mapping and the pages it touched. */
export interface SparseHolder extends Holder {
  start: bigint;
  end: bigint;
  layout: { twins: number; zero: number; unique: number; read: number };
}

/**
 * Starts test/fixtures/sparse-mapping.py (a 64 GiB MAP_NORESERVE mapping with
 * a few MiB touched, far apart). It holds still until killed. The mapping
 * needs overcommit (vm.overcommit_memory 0 or 1: mode 2 charges even
 * MAP_NORESERVE) and no address-space limit below 64 GiB.
 */
export async function startSparse(ctx: TestContext, args: Array<'mergeable' | 'nozero'> = []): Promise<SparseHolder> {
  const overcommit = fs.readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim();
  const limit = /^Max address space\s+(\S+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1];
  needs(ctx, overcommit !== '2', `vm.overcommit_memory 0 or 1 for a 64 GiB MAP_NORESERVE mapping (it is ${overcommit})`);
  needs(ctx, limit === undefined || limit === 'unlimited' || Number(limit) > 2 ** 37, `an address-space limit above 64 GiB (ulimit -v: ${limit})`);
  const child = spawn('python3', [path.join(FIXTURES, 'sparse-mapping.py'), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    // Under test:asan, not python: its own 16 TiB shadow would be estimated too.
    env: { ...unsanitizedEnv(), SPARSE_SEED: String(Math.floor(Math.random() * 1e9)) },
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await firstLine(child, 'sparse-mapping.py');
  const ready = JSON.parse(line) as { start: number; end: number; layout: SparseHolder['layout'] };
  return {
    child,
    pid: child.pid!,
    start: BigInt(ready.start),
    end: BigInt(ready.end),
    layout: ready.layout,
    send(): Promise<never> {
      return Promise.reject(new Error('sparse-mapping.py takes no messages'));
    },
    async kill(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
