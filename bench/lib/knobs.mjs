// Global knobs, touched carefully: KSM and THP are one resource for the whole
// machine, shared with other people's test runs.
//
// - joinKsm() registers this run in the holders file that test/setup/ksm-knobs.ts
//   uses (same file, same lock, same format), so a test run ending while the
//   bench runs does not switch KSM off under it, and whoever leaves last puts
//   the machine's own knobs back.
// - withKnobs() / withThp() change a knob for one short window and restore it
//   in `finally`; an exit or signal handler restores any window still open.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// NODE_KSM_BENCH_SYSFS points the knob code at a scratch tree (tests only).
const SYSFS = process.env.NODE_KSM_BENCH_SYSFS ?? '/sys';
export const KSM = path.join(SYSFS, 'kernel/mm/ksm');
export const THP = path.join(SYSFS, 'kernel/mm/transparent_hugepage/enabled');
const STATE = process.env.NODE_KSM_BENCH_SYSFS
  ? path.join(SYSFS, 'node-ksm-test-knobs.json')
  : path.join(os.tmpdir(), 'node-ksm-test-knobs.json');
const LOCK = `${STATE}.lock`;

/** The knobs the test setup runs with; the bench's baseline between windows. */
export const BASE_KNOBS = { advisor_mode: 'none', pages_to_scan: '5000', sleep_millisecs: '10', run: '1' };

/** Saved and restored by the last holder, in restore order (as the test setup). */
const SAVED = [
  'advisor_mode', 'pages_to_scan', 'sleep_millisecs', 'use_zero_pages', 'smart_scan', 'max_page_sharing',
  'stable_node_chains_prune_millisecs', 'advisor_target_scan_time', 'advisor_max_cpu',
  'advisor_min_pages_to_scan', 'advisor_max_pages_to_scan', 'run',
];

/** A sysfs file's value; for `[a] b` choices, the bracketed word. */
export function readChoice(file) {
  try {
    const raw = fs.readFileSync(file, 'utf8').trim();
    return /\[([^\]]+)\]/.exec(raw)?.[1] ?? raw;
  } catch {
    return undefined;
  }
}

export const readKnob = (name) => readChoice(path.join(KSM, name));

function writeFile(file, value) {
  if (readChoice(file) === String(value)) return;
  fs.writeFileSync(file, String(value));
}

export const writeKnob = (name, value) => writeFile(path.join(KSM, name), value);

/** advisor off before pages_to_scan (EINVAL otherwise), advisor on and run last. */
function rank(name, value) {
  if (name === 'advisor_mode') return value === 'none' ? 0 : 2;
  if (name === 'run') return 3;
  return 1;
}

function writeAll(values) {
  const entries = Object.entries(values).filter(([name]) => readKnob(name) !== undefined);
  entries.sort((a, b) => rank(a[0], a[1]) - rank(b[0], b[1]));
  for (const [name, value] of entries) writeKnob(name, value);
}

// Windows still open, innermost last: restored by the exit handler.
const open = [];
let token;
let handlersInstalled = false;

function restoreOpen() {
  while (open.length > 0) {
    const window = open.pop();
    try {
      window.restore();
    } catch (error) {
      console.error(`bench: could not restore ${window.what}: ${error.message}`);
    }
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

function withLock(fn) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
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

function loadState() {
  try {
    return JSON.parse(fs.readFileSync(STATE, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The knobs saved by the first holder still alive, if any. */
export function savedMachineKnobs() {
  const state = loadState();
  if (!state || !state.holders.some((holder) => alive(holder.pid))) return undefined;
  return state.saved;
}

function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', () => {
    restoreOpen();
    leaveKsm();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      restoreOpen();
      leaveKsm();
      process.kill(process.pid, signal);
    });
  }
}

/** Whether this process can run KSM benchmarks at all, and if not why. */
export function ksmAvailability() {
  if (process.platform !== 'linux') return { available: false, reason: `KSM needs Linux; this is ${process.platform}` };
  if (!fs.existsSync(KSM)) return { available: false, reason: `${KSM} does not exist: kernel without CONFIG_KSM` };
  if (process.getuid?.() !== 0) return { available: false, reason: 'the benchmarks set KSM knobs and read pagemap: they need root' };
  try {
    fs.accessSync(path.join(KSM, 'run'), fs.constants.W_OK);
  } catch {
    return { available: false, reason: `${KSM}/run is not writable (read-only /sys?)` };
  }
  return { available: true, reason: '' };
}

/**
 * Registers as a holder of the shared KSM state and sets the baseline knobs
 * (run=1, pages_to_scan 5000, sleep 10 ms: what concurrent test runs use).
 */
export function joinKsm() {
  installHandlers();
  if (token !== undefined) return;
  token = randomUUID();
  withLock(() => {
    const previous = loadState();
    const holders = (previous?.holders ?? []).filter((holder) => alive(holder.pid));
    const saved = holders.length > 0 && previous ? previous.saved : {};
    if (holders.length === 0) {
      for (const name of SAVED) {
        const value = readKnob(name);
        if (value !== undefined) saved[name] = value;
      }
    }
    holders.push({ token, pid: process.pid });
    fs.writeFileSync(STATE, JSON.stringify({ saved, holders }));
    writeAll(BASE_KNOBS);
  });
}

/** Leaves the holders; the last one out restores the machine's knobs. */
export function leaveKsm() {
  if (token === undefined) return;
  const mine = token;
  token = undefined;
  withLock(() => {
    const current = loadState();
    if (!current) return;
    const holders = current.holders.filter((holder) => holder.token !== mine && alive(holder.pid));
    if (holders.length > 0) {
      fs.writeFileSync(STATE, JSON.stringify({ saved: current.saved, holders }));
      return;
    }
    const entries = SAVED.filter((name) => current.saved[name] !== undefined).map((name) => [name, current.saved[name]]);
    for (const [name, value] of entries) {
      try {
        writeKnob(name, value);
      } catch (error) {
        console.error(`bench: could not restore ${name}=${value}: ${error.message}`);
      }
    }
    fs.rmSync(STATE, { force: true });
  });
}

let overwritten = 0;

/** Times another process rewrote a knob inside one of our windows (we put it back). */
export function knobsOverwritten() {
  return overwritten;
}

/**
 * Runs `fn` with KSM knobs set (sysfs names), restoring the previous values
 * after. A test run starting elsewhere writes its own knobs: inside the
 * window they are put back within 50 ms, and counted.
 */
export async function withKnobs(values, fn, { alsoRestore = [] } = {}) {
  installHandlers();
  const names = Object.keys(values);
  // alsoRestore: knobs the kernel itself moves inside the window (the
  // advisor sets pages_to_scan), put back after it but not held.
  const before = Object.fromEntries(
    [...names, ...alsoRestore].map((name) => [name, readKnob(name)]).filter(([, v]) => v !== undefined),
  );
  const window = { what: `KSM knobs ${names.join(', ')}`, restore: () => writeAll(before) };
  open.push(window);
  const hold = setInterval(() => {
    const changed = names.some((name) => readKnob(name) !== undefined && readKnob(name) !== String(values[name]));
    if (changed) {
      overwritten += 1;
      writeAll(values);
    }
  }, 50);
  try {
    writeAll(values);
    return await fn(before);
  } finally {
    clearInterval(hold);
    const index = open.indexOf(window);
    if (index >= 0) open.splice(index, 1);
    writeAll(before);
  }
}

/** Runs `fn` with THP `enabled` set to `mode`, restoring the previous mode after. */
export async function withThp(mode, fn) {
  installHandlers();
  const before = readChoice(THP);
  if (before === undefined) throw new Error(`${THP} is missing: no THP on this kernel`);
  const window = { what: `THP mode (${before})`, restore: () => writeFile(THP, before) };
  open.push(window);
  try {
    writeFile(THP, mode);
    return await fn(before);
  } finally {
    const index = open.indexOf(window);
    if (index >= 0) open.splice(index, 1);
    writeFile(THP, before);
  }
}
