/**
 * The demo: N worker processes build the same large table in allocMergeable
 * Buffers, and we print what the kernel reports while KSM merges them.
 *
 * Not part of the public API (lib/index.ts): `npm run demo` runs it through
 * scripts/demo.mjs, and the CLI's `demo` command calls runDemo().
 *
 * What counts as the saving: the workers' table mappings hold N x size
 * bytes of identical data; what they cost once merged is the sum of their
 * PSS (a KSM page mapped by k processes charges each 1/k), so the saving is
 * N x mapped - sum(PSS), per process and exact, unmoved by whatever else
 * merges on the machine. Each run salts the table with its own seed, so two
 * demos at once do not merge with each other. Machine-wide pages_sharing and
 * general_profit are shown too, as deltas since the start.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { KsmError, KsmNotRunningError, KsmTimeoutError, abortError, isSystemError } from '../../errors.js';
import { pageSize } from '../../merge/buffers.js';
import { ksmStat, type KsmStat } from '../../kernel/ksm-stat.js';
import { parseSmaps } from '../../kernel/smaps.js';
import { supportInfo } from '../../kernel/support.js';
import { setKnobs, systemStat, type KsmKnobs, type SystemStat } from '../../kernel/sysfs.js';
import { checkBoolean, checkDuration, checkOptions, checkSignal, invalidType, outOfRange } from '../../validate.js';
import { waitForMerge } from '../../merge/wait.js';
import { printable } from '../output.js';

const MiB = 1024 * 1024;

export interface DemoOptions {
  /** Worker processes, each holding the table (default 4; 2 to 64). */
  workers?: number;
  /** Bytes of table per worker (default 64 MiB; at least one page, at most 4 GiB). */
  size?: number;
  /**
   * Salt of the table's contents (default: random per run, so concurrent
   * demos do not merge with each other). An unsigned 32-bit integer.
   */
  seed?: number;
  /**
   * Where KSM is not running and we are root: start it with scan settings
   * that finish the demo in seconds, and put every knob back on exit.
   * Default false: never touch the machine's knobs unasked.
   */
  enableKsm?: boolean;
  /** Refresh period of the live view (default 1000 ms). */
  intervalMs?: number;
  /** Full scans after the last write that count as settled (default 2, the kernel's rule). */
  fullScans?: number;
  /** Give up waiting for KSM to settle after this long (default 600000 ms). */
  timeoutMs?: number;
  /** Stops the demo early: workers killed, knobs restored, the promise rejects with AbortError. */
  signal?: AbortSignal;
  /** Stop on SIGINT / SIGTERM / SIGHUP as on `signal` (default true). */
  handleSignals?: boolean;
}

/** Where the demo prints: process.stdout fits. On a TTY the live view redraws in place. */
export interface DemoOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** One worker as the kernel reported it at the last refresh. */
export interface DemoProcess {
  pid: number;
  /** /proc/PID/ksm_stat, parsed. */
  ksmStat: KsmStat;
  /** The table mapping's smaps: bytes backed by KSM pages (`KSM:`, 6.6+). */
  tableKsm: number | undefined;
  /** The table mapping's resident bytes. */
  tableRss: number;
  /** The table mapping's proportional share (a page mapped k times counts 1/k). */
  tablePss: number;
}

export interface DemoSnapshot {
  elapsedMs: number;
  processes: DemoProcess[];
  system: SystemStat;
  /** Full scans completed since the workers finished writing. */
  scansSinceWrite: number;
  /** pages_sharing now minus at the start, in pages (machine-wide: includes other merging). */
  pagesSharingDelta: number;
  /** general_profit now minus at the start, bytes (machine-wide). */
  generalProfitDelta: number;
  /** N x mapped table bytes - sum of the table mappings' PSS: what merging saved. */
  savedBytes: number;
  /** savedBytes / theoreticalSaving. */
  savedRatio: number;
}

export interface DemoResult extends DemoSnapshot {
  workers: number;
  /** Table bytes per worker. */
  size: number;
  seed: number;
  /** (N - 1) x size: what perfect merging saves. */
  theoreticalSaving: number;
  /** Two (fullScans) full scans passed after the last write. */
  settled: boolean;
  /** Knobs written by enableKsm, with the values restored on exit. */
  knobs: { set: KsmKnobs; restored: KsmKnobs } | undefined;
  /** Every worker read its table back intact after merging (copy-on-write held). */
  intact: boolean;
}

/** What to do about KSM's state before starting; pure, so it can be tested. */
export type KsmPlan =
  | { action: 'run'; notes: string[] }
  | { action: 'enable'; knobs: KsmKnobs; notes: string[] }
  | { action: 'refuse'; why: string; fix: string[] };

export interface PlanContext {
  enableKsm: boolean;
  root: boolean;
  /** /sys/kernel/mm/ksm/run can be written (false on a read-only /sys). */
  writable: boolean;
  /** Pages the workers will hold in all. */
  demoPages: number;
}

const KSM_DIR = '/sys/kernel/mm/ksm';

/** Scan settings that get through the demo's pages in about two seconds a scan. */
export function demoKnobs(stat: Pick<SystemStat, 'advisorMode'>, demoPages: number): KsmKnobs {
  const sleepMillisecs = 20;
  const pagesToScan = Math.min(20_000, Math.max(1_000, Math.ceil(demoPages / 100)));
  const knobs: KsmKnobs = { pagesToScan, sleepMillisecs, run: 1 };
  // The scan-time advisor owns pages_to_scan (writing it is EINVAL).
  if (stat.advisorMode !== undefined && stat.advisorMode !== 'none') knobs.advisorMode = 'none';
  return knobs;
}

export function planKsm(
  stat: Pick<SystemStat, 'run' | 'pagesToScan' | 'sleepMillisecs' | 'advisorMode'>,
  context: PlanContext,
): KsmPlan {
  if (stat.run === 1) {
    const notes: string[] = [];
    const pagesToScan = stat.pagesToScan ?? 0;
    const sleep = stat.sleepMillisecs ?? 20;
    if (stat.advisorMode === 'none' || stat.advisorMode === undefined) {
      if (pagesToScan > 0) {
        const seconds = (context.demoPages / pagesToScan) * (Math.max(sleep, 1) / 1000);
        if (seconds > 10) {
          notes.push(
            `pages_to_scan=${pagesToScan}, sleep_millisecs=${sleep}: a full scan of the demo's pages alone takes ` +
              `~${Math.round(seconds)} s, and settling takes two. To go faster (as root): ` +
              `echo ${demoKnobs(stat, context.demoPages).pagesToScan} > ${KSM_DIR}/pages_to_scan`,
          );
        }
      }
    } else {
      notes.push(`the ${stat.advisorMode} advisor sets pages_to_scan; the demo may take a while to settle`);
    }
    return { action: 'run', notes };
  }

  const state = stat.run === 0 ? 'stopped (run=0)' : stat.run === 2 ? 'unmerging (run=2)' : `unreadable (run=${String(stat.run)})`;
  const why = `KSM is ${state}: ksmd will not scan, so nothing can merge.`;
  const manual = [
    `echo ${demoKnobs(stat, context.demoPages).pagesToScan} > ${KSM_DIR}/pages_to_scan`,
    `echo 1 > ${KSM_DIR}/run`,
  ];
  if (context.root && context.writable && context.enableKsm) {
    return {
      action: 'enable',
      knobs: demoKnobs(stat, context.demoPages),
      notes: ['KSM was not running: starting it for the demo; the knobs are put back on exit'],
    };
  }
  if (context.root && context.writable) {
    return {
      action: 'refuse',
      why,
      fix: [
        'rerun with --enable-ksm to start it for the demo (the knobs are put back on exit): npm run demo -- --enable-ksm',
        'or start it yourself, as root:',
        ...manual.map((line) => `  ${line}`),
      ],
    };
  }
  if (context.root) {
    return {
      action: 'refuse',
      why: `${why} ${KSM_DIR} is read-only here (a container?).`,
      fix: ['start KSM on the host, as root:', ...manual.map((line) => `  ${line}`)],
    };
  }
  return {
    action: 'refuse',
    why: `${why} Starting it needs root.`,
    fix: [
      'as root, either: sudo npm run demo -- --enable-ksm',
      'or start it yourself:',
      ...manual.map((line) => `  sudo sh -c '${line}'`),
    ],
  };
}

function checkInt(name: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(name, `an integer from ${min} to ${max}`, value);
  }
  return value;
}

/** Parses a size: a plain number is MiB; a K/M/G suffix (KiB/MiB/GiB) says otherwise. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmg])?(?:i?b)?$/i.exec(text.trim());
  if (!match) throw outOfRange('--size', 'a size such as 64, 64M, 512K or 1G', text);
  const unit = { k: 1024, m: MiB, g: 1024 * MiB }[(match[2] ?? 'm').toLowerCase() as 'k' | 'm' | 'g'];
  return Math.round(Number(match[1]) * unit);
}

export const DEMO_USAGE = `Usage: npm run demo -- [options]

Starts worker processes that each build the same table in allocMergeable()
Buffers and shows KSM merging them, as the kernel reports it.

Options:
  -w, --workers N     worker processes (default 4)
  -s, --size SIZE     table per worker: MiB, or with a K/M/G suffix (default 64)
      --seed N        salt of the table (default: random per run)
      --enable-ksm    where KSM is off and you are root: start it for the demo
                      and restore every knob on exit
      --interval S    seconds between refreshes (default 1)
      --timeout S     give up waiting for KSM to settle after S seconds (default 600)
      --json          print the final result as JSON only
  -h, --help          this text
`;

export interface DemoArgs {
  options: DemoOptions;
  json: boolean;
  help: boolean;
}

/** The demo's command-line flags (shared by `npm run demo` and the CLI). */
export function parseDemoArgs(argv: string[]): DemoArgs {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      workers: { type: 'string', short: 'w' },
      size: { type: 'string', short: 's' },
      seed: { type: 'string' },
      'enable-ksm': { type: 'boolean' },
      interval: { type: 'string' },
      timeout: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const number = (flag: string, text: string): number => {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw outOfRange(`--${flag}`, 'a number', text);
    return value;
  };
  const options: DemoOptions = {};
  if (values.workers !== undefined) options.workers = number('workers', values.workers);
  if (values.size !== undefined) options.size = parseSize(values.size);
  if (values.seed !== undefined) options.seed = number('seed', values.seed);
  if (values['enable-ksm'] === true) options.enableKsm = true;
  if (values.interval !== undefined) options.intervalMs = Math.round(number('interval', values.interval) * 1000);
  if (values.timeout !== undefined) options.timeoutMs = Math.round(number('timeout', values.timeout) * 1000);
  return { options, json: values.json === true, help: values.help === true };
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function signedMib(bytes: number): string {
  return `${bytes >= 0 ? '+' : '-'}${mib(Math.abs(bytes))}`;
}

function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

interface Worker {
  child: ChildProcess;
  pid: number;
  start: bigint;
  end: bigint;
}

interface Ready {
  type: 'ready';
  pid: number;
  address: string;
  mapped: number;
  buildMs: number;
}

function workerScript(): string {
  // dist/cli/demo/run.js next to worker.js; under vitest, lib/ has no .js.
  const here = path.join(__dirname, 'worker.js');
  if (fs.existsSync(here)) return here;
  return path.join(__dirname, '..', '..', '..', 'dist', 'cli', 'demo', 'worker.js');
}

function startWorker(size: number, seed: number, signal: AbortSignal, children: ChildProcess[]): Promise<Worker> {
  const child = fork(workerScript(), [String(size), String(seed)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    // Not the parent's flags (a debugger, --expose-gc): plain node processes.
    execArgv: [],
  });
  children.push(child);
  return new Promise<Worker>((resolve, reject) => {
    const onAbort = (): void => {
      child.kill('SIGKILL');
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('message', (message: Ready | { type: 'error'; message: string }) => {
      signal.removeEventListener('abort', onAbort);
      if (message.type === 'error') {
        reject(new Error(`worker ${child.pid}: ${message.message}`));
        return;
      }
      const start = BigInt(message.address);
      resolve({ child, pid: message.pid, start, end: start + BigInt(message.mapped) });
    });
    child.once('exit', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      reject(new Error(`a worker exited before its table was built (${sig ?? `exit code ${code}`})`));
    });
    child.once('error', reject);
  });
}

function allExited(children: ChildProcess[]): Promise<unknown> {
  return Promise.all(
    children.map((child) =>
      child.exitCode !== null || child.signalCode !== null
        ? undefined
        : new Promise((resolve) => child.once('exit', resolve)),
    ),
  );
}

function ask<T>(worker: Worker, message: Record<string, unknown>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onExit = (): void => reject(new Error(`worker ${worker.pid} exited`));
    worker.child.once('exit', onExit);
    worker.child.once('message', (reply: T) => {
      worker.child.off('exit', onExit);
      resolve(reply);
    });
    worker.child.send(message);
  });
}

function tableSmaps(worker: Worker): { ksm: number | undefined; rss: number; pss: number } {
  const { vmas } = parseSmaps(fs.readFileSync(`/proc/${worker.pid}/smaps`, 'utf8'));
  let ksm: number | undefined;
  let rss = 0;
  let pss = 0;
  for (const vma of vmas) {
    if (vma.start >= worker.end || vma.end <= worker.start) continue;
    rss += vma.fields.Rss ?? 0;
    pss += vma.fields.Pss ?? 0;
    if (vma.fields.KSM !== undefined) ksm = (ksm ?? 0) + vma.fields.KSM;
  }
  return { ksm, rss, pss };
}

function readScans(): number {
  const value = Number(fs.readFileSync(path.join(KSM_DIR, 'full_scans'), 'utf8').trim());
  return Number.isSafeInteger(value) ? value : 0;
}

/**
 * Runs the demo: starts `workers` processes that each build the same
 * `size`-byte table in allocMergeable() Buffers, prints per-process
 * ksm_stat, the table mappings' KSM and PSS, machine-wide pages_sharing and
 * general_profit, and the saving against (N - 1) x size, refreshing until
 * merging settled (two full scans after the last write), then a summary.
 * Workers are killed and knobs restored on every way out.
 *
 * @returns the last snapshot with the settings used.
 * @throws TypeError / RangeError for bad options.
 * @throws KsmUnsupportedError where KSM is not available.
 * @throws KsmNotRunningError when KSM is off and cannot or may not be
 *   started (why and what to run are printed first), or stops mid-run.
 * @throws AbortError (code ABORT_ERR) on `signal` or Ctrl-C.
 */
export async function runDemo(options: DemoOptions | undefined, output: DemoOutput): Promise<DemoResult> {
  const opts = checkOptions<DemoOptions>(options);
  if (typeof output !== 'object' || output === null || typeof output.write !== 'function') {
    throw invalidType('output', 'an object with a write(text) method', output);
  }
  const workers = checkInt('options.workers', opts.workers, 2, 64) ?? 4;
  const seed = checkInt('options.seed', opts.seed, 0, 0xffffffff) ?? randomInt(0, 0xffffffff);
  const fullScans = checkInt('options.fullScans', opts.fullScans, 1, 1000) ?? 2;
  const intervalMs = checkDuration('options.intervalMs', opts.intervalMs) ?? 1000;
  const timeoutMs = checkDuration('options.timeoutMs', opts.timeoutMs) ?? 600_000;
  const enableKsm = checkBoolean('options.enableKsm', opts.enableKsm) ?? false;
  const handleSignals = checkBoolean('options.handleSignals', opts.handleSignals) ?? true;
  const outerSignal = checkSignal(opts.signal);

  const info = supportInfo();
  if (!info.supported) {
    output.write(`node-ksm demo: KSM cannot be used here: ${printable(info.reason ?? 'unknown reason')}\n`);
  }
  const page = pageSize(); // throws KsmUnsupportedError with the reason
  const size = checkInt('options.size', opts.size, page, 4 * 1024 * MiB) ?? 64 * MiB;
  const mapped = Math.ceil(size / page) * page;
  const demoPages = (workers * mapped) / page;
  const theoreticalSaving = (workers - 1) * size;

  // Decide about KSM before starting anything.
  const initial = systemStat();
  let writable = false;
  try {
    fs.accessSync(path.join(KSM_DIR, 'run'), fs.constants.W_OK);
    writable = true;
  } catch {
    writable = false;
  }
  const plan = planKsm(initial, { enableKsm, root: info.root, writable, demoPages });
  if (plan.action === 'refuse') {
    output.write(`node-ksm demo: ${plan.why}\n${plan.fix.map((line) => `  ${line}\n`).join('')}`);
    throw new KsmNotRunningError(initial.run);
  }

  const pool: Worker[] = [];
  const pending: ChildProcess[] = [];
  let knobs: { set: KsmKnobs; before: KsmKnobs } | undefined;
  let restored: KsmKnobs | undefined;

  const controller = new AbortController();
  const signal = controller.signal;
  const onOuterAbort = (): void => controller.abort(outerSignal?.reason);
  outerSignal?.addEventListener('abort', onOuterAbort, { once: true });
  if (outerSignal?.aborted) controller.abort(outerSignal.reason);
  const onSignal = (name: NodeJS.Signals): void => {
    output.write(`\nnode-ksm demo: ${name}: stopping the workers${knobs ? ' and restoring the KSM knobs' : ''}\n`);
    controller.abort(new Error(name));
  };
  const signalNames: NodeJS.Signals[] = handleSignals ? ['SIGINT', 'SIGTERM', 'SIGHUP'] : [];
  for (const name of signalNames) process.on(name, onSignal);

  let cleaned = false;
  // Synchronous, so it also runs from process.on('exit').
  const cleanup = (): void => {
    if (cleaned) return;
    cleaned = true;
    for (const child of pending) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const worker of pool) {
      if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    }
    if (knobs) {
      try {
        restored = setKnobs(knobs.before).after;
      } catch (error) {
        output.write(
          `node-ksm demo: could not restore the KSM knobs ${JSON.stringify(knobs.before)}: ` +
            `${printable(error instanceof Error ? error.message : String(error))}\n`,
        );
      }
    }
  };
  process.on('exit', cleanup);

  const started = performance.now();
  try {
    output.write(
      `node-ksm demo: ${workers} workers x ${mib(size)} table (seed ${seed}); ` +
        `perfect merging saves (N-1) x size = ${mib(theoreticalSaving)}\n`,
    );
    if (plan.action === 'enable') {
      const change = setKnobs(plan.knobs);
      knobs = { set: plan.knobs, before: change.before };
      for (const note of plan.notes) output.write(`  ${note}\n`);
      output.write(`  set ${describeKnobs(change.after)} (was ${describeKnobs(change.before)})\n`);
    } else {
      for (const note of plan.notes) output.write(`  note: ${note}\n`);
    }
    const current = knobs ? systemStat() : initial;
    output.write(
      `  KSM: run=${String(current.run)} pages_to_scan=${String(current.pagesToScan)} ` +
        `sleep_millisecs=${String(current.sleepMillisecs)} advisor_mode=${current.advisorMode ?? 'n/a'} ` +
        `use_zero_pages=${current.useZeroPages === undefined ? 'n/a' : Number(current.useZeroPages)}\n`,
    );

    const baseline = systemStat();
    const starts = Array.from({ length: workers }, () => startWorker(size, seed, signal, pending));
    const results = await Promise.allSettled(starts);
    for (const result of results) if (result.status === 'fulfilled') pool.push(result.value);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
    if (signal.aborted) throw abortError(signal);
    const lastWriteScans = readScans();
    output.write(`  workers ${pool.map((worker) => worker.pid).join(', ')} built their tables; waiting for ksmd\n`);

    const snapshot = (): DemoSnapshot => {
      const system = systemStat();
      const processes = pool.map((worker): DemoProcess => {
        const smaps = tableSmaps(worker);
        return { pid: worker.pid, ksmStat: ksmStat(worker.pid), tableKsm: smaps.ksm, tableRss: smaps.rss, tablePss: smaps.pss };
      });
      const pss = processes.reduce((sum, p) => sum + p.tablePss, 0);
      const savedBytes = Math.max(0, workers * mapped - pss);
      return {
        elapsedMs: performance.now() - started,
        processes,
        system,
        scansSinceWrite: Math.max(0, (system.fullScans ?? 0) - lastWriteScans - 1),
        pagesSharingDelta: (system.pagesSharing ?? 0) - (baseline.pagesSharing ?? 0),
        generalProfitDelta: (system.generalProfit ?? 0) - (baseline.generalProfit ?? 0),
        savedBytes,
        savedRatio: theoreticalSaving > 0 ? savedBytes / theoreticalSaving : 0,
      };
    };

    const tty = output.isTTY === true;
    let drawn = 0;
    const draw = (snap: DemoSnapshot): void => {
      if (tty) {
        const lines = renderTable(snap, { page, mapped, theoreticalSaving, fullScans });
        output.write(`${drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ''}${lines.join('\n')}\n`);
        drawn = lines.length;
      } else {
        output.write(`${renderProgress(snap, { page, mapped, theoreticalSaving, fullScans })}\n`);
      }
    };

    let settled = false;
    const waiting = waitForMerge({ fullScans, timeoutMs, signal }).then(
      () => {
        settled = true;
      },
      (error: unknown) => {
        if (error instanceof KsmTimeoutError) return;
        throw error;
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const refresh = (): void => {
      draw(snapshot());
      timer = setTimeout(refresh, intervalMs);
    };
    refresh();
    try {
      await waiting;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }

    // Copy-on-write: every worker still reads exactly its own table.
    const checks = await Promise.all(pool.map((worker) => ask<{ intact: boolean }>(worker, { cmd: 'verify' })));
    const intact = checks.every((check) => check.intact);
    const last = snapshot();
    if (tty) output.write(drawn > 0 ? `\x1b[${drawn}F\x1b[J` : '');
    output.write(`${renderTable(last, { page, mapped, theoreticalSaving, fullScans }).join('\n')}\n`);
    output.write(renderSummary(last, { workers, size, theoreticalSaving, settled, fullScans, intact }));
    cleanup();
    await allExited(pending);
    if (knobs && restored) output.write(`KSM knobs restored: ${describeKnobs(restored)}\n`);
    return {
      ...last,
      workers,
      size,
      seed,
      theoreticalSaving,
      settled,
      knobs: knobs && restored ? { set: knobs.set, restored } : undefined,
      intact,
    };
  } catch (error) {
    if (signal.aborted && !(error instanceof Error && error.name === 'AbortError')) throw abortError(signal);
    if (error instanceof KsmNotRunningError) {
      output.write(`\nnode-ksm demo: KSM stopped while the demo ran (${printable(error.message)})\n`);
    }
    throw error;
  } finally {
    cleanup();
    await allExited(pending);
    process.off('exit', cleanup);
    for (const name of signalNames) process.off(name, onSignal);
    outerSignal?.removeEventListener('abort', onOuterAbort);
    if (knobs && restored && signal.aborted) output.write(`KSM knobs restored: ${describeKnobs(restored)}\n`);
  }
}

const KNOB_FILES: Record<string, string> = {
  run: 'run',
  pagesToScan: 'pages_to_scan',
  sleepMillisecs: 'sleep_millisecs',
  advisorMode: 'advisor_mode',
};

function describeKnobs(knobs: KsmKnobs): string {
  return Object.entries(knobs)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${KNOB_FILES[name] ?? name}=${String(value)}`)
    .join(' ');
}

interface RenderContext {
  page: number;
  mapped: number;
  theoreticalSaving: number;
  fullScans: number;
}

function renderTable(snap: DemoSnapshot, ctx: RenderContext): string[] {
  const { system } = snap;
  const lines = [
    `t=${(snap.elapsedMs / 1000).toFixed(1)}s  full_scans ${String(system.fullScans)} ` +
      `(${snap.scansSinceWrite} since the last write; settled after ${ctx.fullScans})`,
    `  ${pad('pid', 8)} ${pad('merging_pages', 14)} ${pad('process_profit', 15)} ${pad('rmap_items', 11)} ` +
      `${pad('table KSM', 11)} ${pad('table PSS', 11)}`,
  ];
  for (const p of snap.processes) {
    const s = p.ksmStat;
    lines.push(
      `  ${pad(p.pid, 8)} ${pad(s.mergingPages ?? 'n/a', 14)} ` +
        `${pad(s.processProfit === undefined ? 'n/a' : mib(s.processProfit), 15)} ${pad(s.rmapItems ?? 'n/a', 11)} ` +
        `${pad(p.tableKsm === undefined ? 'n/a' : mib(p.tableKsm), 11)} ${pad(mib(p.tablePss), 11)}`,
    );
  }
  lines.push(
    `  machine: pages_sharing ${String(system.pagesSharing)} (${snap.pagesSharingDelta >= 0 ? '+' : ''}${snap.pagesSharingDelta} pages, ` +
      `${signedMib(snap.pagesSharingDelta * ctx.page)}), general_profit ${mib(system.generalProfit ?? 0)} ` +
      `(${signedMib(snap.generalProfitDelta)}) since start`,
    `  saved: ${mib(snap.savedBytes)} of ${mib(ctx.theoreticalSaving)} theoretical ` +
      `(${(snap.savedRatio * 100).toFixed(1)}%)`,
  );
  return lines;
}

function renderProgress(snap: DemoSnapshot, ctx: RenderContext): string {
  const merging = snap.processes.map((p) => p.ksmStat.mergingPages ?? 0);
  return (
    `t=${(snap.elapsedMs / 1000).toFixed(1)}s scans ${snap.scansSinceWrite}/${ctx.fullScans} ` +
    `merging_pages [${merging.join(', ')}] of ${ctx.mapped / ctx.page} each, ` +
    `pages_sharing ${snap.pagesSharingDelta >= 0 ? '+' : ''}${snap.pagesSharingDelta}, ` +
    `saved ${mib(snap.savedBytes)} of ${mib(ctx.theoreticalSaving)} (${(snap.savedRatio * 100).toFixed(1)}%)`
  );
}

function renderSummary(
  snap: DemoSnapshot,
  ctx: { workers: number; size: number; theoreticalSaving: number; settled: boolean; fullScans: number; intact: boolean },
): string {
  const profits = snap.processes.map((p) => p.ksmStat.processProfit ?? 0);
  const summed = profits.reduce((a, b) => a + b, 0);
  return [
    '',
    `summary: ${ctx.settled ? `settled (${ctx.fullScans} full scans after the last write)` : 'NOT settled before the timeout'}`,
    `  ${ctx.workers} workers held ${mib(ctx.workers * ctx.size)} of identical table; ` +
      `their table mappings now cost ${mib(snap.processes.reduce((s, p) => s + p.tablePss, 0))} (sum of PSS)`,
    `  saved: ${mib(snap.savedBytes)} of ${mib(ctx.theoreticalSaving)} theoretical (N-1) x size ` +
      `(${(snap.savedRatio * 100).toFixed(1)}%)`,
    `  machine-wide since start: pages_sharing ${snap.pagesSharingDelta >= 0 ? '+' : ''}${snap.pagesSharingDelta} pages, ` +
      `general_profit ${signedMib(snap.generalProfitDelta)} (after KSM's rmap_item metadata; includes any other merging here)`,
    `  note: each worker's ksm_process_profit counts the copy that had to stay; summed they claim ${mib(summed)}, ` +
      'which is not the saving',
    `  copy-on-write: ${ctx.intact ? 'every worker read back its table intact' : 'A WORKER READ BACK A DIFFERENT TABLE'}`,
    '',
  ].join('\n');
}

/** True for errors the demo's entry reports as one line (no stack). */
export function isExpectedDemoError(error: unknown): boolean {
  if (error instanceof KsmError) return true;
  if (error instanceof Error && (error.name === 'AbortError' || (error as { code?: string }).code?.startsWith('ERR_') === true)) {
    return true;
  }
  return isSystemError(error);
}
