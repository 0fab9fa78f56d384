// Groups of worker processes holding the same data (Node or Python), and
// the clock from "data written" to "merged".
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { KsmStoppedError, PAGE, ksmStat, sleep, smapsRange, sysfsNumber } from './kernel.mjs';

export { KsmStoppedError };

const WORKERS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'workers');
const live = new Set();

// Workers exit on stdin EOF; this is for a parent that dies by a signal.
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function command(kind, spec) {
  if (kind === 'node') return [process.execPath, [path.join(WORKERS, 'holder.cjs'), JSON.stringify(spec)]];
  if (kind === 'python') return ['python3', [path.join(WORKERS, 'holder.py'), JSON.stringify(spec)]];
  throw new Error(`unknown worker kind ${kind}`);
}

/** Starts one worker and resolves with its ready line. */
export function startWorker(kind, spec) {
  const [file, args] = command(kind, spec);
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  live.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  exited.then(() => live.delete(child));
  const lines = readline.createInterface({ input: child.stdout });
  const queue = [];
  lines.on('line', (line) => queue.shift()?.(JSON.parse(line)));
  const next = () => new Promise((resolve, reject) => {
    queue.push(resolve);
    exited.then((code) => reject(new Error(`${kind} worker exited (${code}) before replying`)));
  });
  return next().then((ready) => ({
    kind,
    pid: ready.pid,
    fillMs: ready.fillMs,
    start: ready.start === undefined ? undefined : BigInt(ready.start),
    end: ready.end === undefined ? undefined : BigInt(ready.end),
    ready,
    stop: () => stopHolder(child, exited),
  }));
}

/** A holder told to exit on stdin, killed after 5 s if it has not. */
export async function stopHolder(child, exited) {
  if (child.exitCode === null && child.signalCode === null) {
    child.stdin.end('exit\n');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Starts `n` workers at once; `writtenAt` is when the last one reported its
 * data written (performance.now()).
 */
export async function startGroup(kind, n, spec) {
  const settled = await Promise.allSettled(Array.from({ length: n }, () => startWorker(kind, spec)));
  const workers = settled.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(workers.map((w) => w.stop()));
    throw failed.reason;
  }
  // Only the data is mergeable (no enableMerge): ksm_stat's merging pages are
  // the data's, and cost nothing to read, where smaps walks every page table.
  const onlyData = spec.mode !== 'plain' && spec.mode !== 'idle' && !spec.enableMerge;
  return { workers, onlyData, writtenAt: performance.now(), stop: () => Promise.all(workers.map((w) => w.stop())) };
}

/** Pages of the group's data ranges that map KSM pages now. */
export function mergedPages(workers, source = 'smaps') {
  let pages = 0;
  for (const worker of workers) {
    if (source === 'ksm_stat') pages += ksmStat(worker.pid).ksm_merging_pages ?? 0;
    else pages += smapsRange(worker.pid, worker.start, worker.end).ksm / PAGE;
  }
  return pages;
}

/**
 * Polls the group's merged pages until they stop changing for `quietScans`
 * full scans (the kernel's "settled"), or `timeoutMs` passes.
 *
 * @returns ms from writtenAt to 50%, 99% and the last change, and the pages.
 */
export async function trackMerge(group, { timeoutMs, pollMs = 50, quietScans = 2, source = group.onlyData ? 'ksm_stat' : 'smaps' }) {
  const expected = group.workers.reduce((sum, w) => sum + Number(w.end - w.start) / PAGE, 0);
  let last = -1;
  let lastChangeAt = performance.now();
  let scansAtChange = sysfsNumber('full_scans');
  let t50;
  let t99;
  const startScans = sysfsNumber('full_scans');
  // pages_to_scan/sleep_millisecs as they were while we waited: other runs
  // may change them, and the times mean little without them.
  const knobsSeen = new Set();
  const deadline = group.writtenAt + timeoutMs;
  for (;;) {
    const now = performance.now();
    const run = sysfsNumber('run');
    if (run !== 1) throw new KsmStoppedError(run);
    knobsSeen.add(`${sysfsNumber('pages_to_scan')}/${sysfsNumber('sleep_millisecs')}`);
    const merged = Math.min(expected, mergedPages(group.workers, source));
    const scans = sysfsNumber('full_scans');
    if (merged !== last) {
      last = merged;
      lastChangeAt = now;
      scansAtChange = scans;
    }
    if (t50 === undefined && merged >= 0.5 * expected) t50 = now - group.writtenAt;
    if (t99 === undefined && merged >= 0.99 * expected) t99 = now - group.writtenAt;
    // Settled: no change across `quietScans` full scans after the last change
    // (+1: the scan under way at the change may not have reached us yet).
    if (merged >= expected || (scans >= scansAtChange + quietScans + 1 && merged > 0)) break;
    if (now > deadline) return { expected, merged: last, t50, t99, settled: undefined, timedOut: true, fullScans: scans - startScans, knobsSeen: [...knobsSeen] };
    await sleep(pollMs);
  }
  return {
    expected,
    merged: last,
    t50,
    t99,
    settled: lastChangeAt - group.writtenAt,
    timedOut: false,
    fullScans: sysfsNumber('full_scans') - startScans,
    knobsSeen: [...knobsSeen],
  };
}

/** "pages_to_scan 5000, sleep 10 ms" as seen during the runs' waits. */
export function knobsDuring(tracks) {
  const seen = [...new Set(tracks.flatMap((t) => t.knobsSeen ?? []))];
  if (seen.length === 0) return 'knobs not seen';
  return seen
    .map((pair) => {
      const [pages, sleep] = pair.split('/');
      return `pages_to_scan ${pages}, sleep ${sleep} ms`;
    })
    .join(' / ') + (seen.length > 1 ? ' (changed by other runs meanwhile)' : '');
}
