/**
 * vitest globalSetup: switch KSM on and speed it up for the run, and put
 * every knob back when the run ends: on teardown, on exit, on Ctrl-C.
 *
 * Several test runs may share this machine's one KSM (parallel runs of the
 * suite in other checkouts): the first to arrive saves the machine's knobs in
 * a state file, later ones register as holders, and the last holder alive
 * restores them.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestProject } from 'vitest/node';

const KSM = '/sys/kernel/mm/ksm';
const STATE = path.join(os.tmpdir(), 'node-ksm-test-knobs.json');
const LOCK = `${STATE}.lock`;

/**
 * What the tests run with: fast enough that two full scans take seconds.
 * smart_scan off: with it on, a page that keeps failing to merge is visited
 * only every few scans, and its age never resets. Two copies of a page
 * written some scans apart (a second worker started a second after the
 * first, at ~50 scans a second) can then fall into visit phases that never
 * meet in the unstable tree, which is emptied every scan: the pair never
 * merges. Measured here: 3 of 10 pairs started 0.9-1.5 s apart did not merge
 * in 15 s with smart_scan 1 (one in a CI run not in 240 s), 4 of 4 did with 0.
 */
export const TEST_KNOBS: Record<string, string> = {
  advisor_mode: 'none',
  pages_to_scan: '5000',
  sleep_millisecs: '10',
  smart_scan: '0',
  run: '1',
};

/** Knobs saved and restored, in restore order (advisor off first, run last). */
const SAVED = [
  'advisor_mode',
  'pages_to_scan',
  'sleep_millisecs',
  'use_zero_pages',
  'smart_scan',
  'max_page_sharing',
  'stable_node_chains_prune_millisecs',
  'advisor_target_scan_time',
  'advisor_max_cpu',
  'advisor_min_pages_to_scan',
  'advisor_max_pages_to_scan',
  'run',
];

interface State {
  saved: Record<string, string>;
  holders: Array<{ token: string; pid: number }>;
}

export interface KsmAvailability {
  available: boolean;
  reason: string;
}

function read(name: string): string | undefined {
  try {
    return fs.readFileSync(path.join(KSM, name), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** advisor_mode reads "[none] scan-time"; it is written as the bare word. */
function current(name: string): string | undefined {
  const raw = read(name);
  if (raw === undefined) return undefined;
  return /\[([^\]]+)\]/.exec(raw)?.[1] ?? raw;
}

function write(name: string, value: string): void {
  if (current(name) === value) return;
  fs.writeFileSync(path.join(KSM, name), value);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function withLock<T>(fn: () => T): T {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A lock older than the deadline belongs to a run that died holding it.
      try {
        if (Date.now() - fs.statSync(LOCK).mtimeMs > 10_000) fs.rmdirSync(LOCK);
      } catch {
        /* gone already */
      }
      if (Date.now() > deadline) throw new Error(`could not take ${LOCK}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmdirSync(LOCK);
  }
}

function loadState(): State | undefined {
  try {
    return JSON.parse(fs.readFileSync(STATE, 'utf8')) as State;
  } catch {
    return undefined;
  }
}

export function availability(): KsmAvailability {
  if (process.platform !== 'linux') return { available: false, reason: `KSM needs Linux; this is ${process.platform}` };
  if (!fs.existsSync(KSM)) return { available: false, reason: `${KSM} does not exist: kernel without CONFIG_KSM` };
  if (process.getuid?.() !== 0) return { available: false, reason: 'switching KSM on for the tests needs root' };
  try {
    fs.accessSync(path.join(KSM, 'run'), fs.constants.W_OK);
  } catch {
    return { available: false, reason: `${KSM}/run is not writable (read-only /sys?)` };
  }
  return { available: true, reason: '' };
}

function restore(saved: Record<string, string>): void {
  for (const name of SAVED) {
    const value = saved[name];
    if (value === undefined || read(name) === undefined) continue;
    try {
      write(name, value);
    } catch (error) {
      console.error(`node-ksm tests: could not restore ${name}=${value}: ${(error as Error).message}`);
    }
  }
}

/**
 * A run started from a process with merge-any on (a shell under systemd's
 * MemoryKSM=yes, for one) hands it to every worker and fixture, and the
 * tests that start from a process with nothing mergeable would fail. It is
 * switched off here, before any worker starts.
 */
function clearInheritedMergeAny(): void {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/ksm_stat', 'utf8');
  } catch {
    return;
  }
  if (!/^ksm_merge_any:\s*yes$/m.test(text)) return;
  const root = path.join(__dirname, '..', '..');
  const addon = createRequire(path.join(root, 'package.json'))('node-gyp-build')(root) as { setMemoryMerge(on: boolean): void };
  addon.setMemoryMerge(false);
  console.warn('node-ksm tests: this run inherited merge-any (PR_SET_MEMORY_MERGE) from its parent; it is off for the run');
}

export default function setup(project: TestProject): () => void {
  clearInheritedMergeAny();
  const state = availability();
  project.provide('ksm', state);
  if (!state.available) {
    console.warn(`node-ksm tests: the real-KSM tests cannot run: ${state.reason}`);
    return () => {};
  }

  const token = randomUUID();
  withLock(() => {
    const previous = loadState();
    const holders = (previous?.holders ?? []).filter((holder) => alive(holder.pid));
    const saved: Record<string, string> = holders.length > 0 && previous ? previous.saved : {};
    if (holders.length === 0) {
      for (const name of SAVED) {
        const value = current(name);
        if (value !== undefined) saved[name] = value;
      }
    }
    holders.push({ token, pid: process.pid });
    fs.writeFileSync(STATE, JSON.stringify({ saved, holders } satisfies State));
    for (const [name, value] of Object.entries(TEST_KNOBS)) {
      if (read(name) !== undefined) write(name, value);
    }
  });

  let done = false;
  const teardown = (): void => {
    if (done) return;
    done = true;
    withLock(() => {
      const current = loadState();
      if (!current) return;
      const holders = current.holders.filter((holder) => holder.token !== token && alive(holder.pid));
      if (holders.length > 0) {
        fs.writeFileSync(STATE, JSON.stringify({ saved: current.saved, holders } satisfies State));
        return;
      }
      restore(current.saved);
      fs.rmSync(STATE, { force: true });
    });
  };
  process.once('exit', teardown);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      teardown();
      process.kill(process.pid, signal);
    });
  }
  return teardown;
}

declare module 'vitest' {
  export interface ProvidedContext {
    ksm: KsmAvailability;
  }
}
