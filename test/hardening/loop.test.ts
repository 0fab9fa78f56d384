/**
 * Reading a process with tens of thousands of VMAs keeps the event loop
 * running: its smaps (tens of MB, a page per read(2)) is read off the loop,
 * never with a synchronous read. A timer ticking every 5 ms must keep ticking
 * through regions(), profit(), estimate() and doctor() of such a process,
 * never standing still for even half as long as a synchronous read and parse
 * of that smaps (what these calls did before) holds it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { doctor, estimate, parseSmaps, profit, regions } from '../../lib/index.js';
import { unsanitizedEnv } from '../helpers/ksm.js';

/** Below vm.max_map_count's default (65,530), with room for python's own mappings. */
const VMAS = 40_000;

/**
 * Runs `fn` with a 5 ms timer beside it; the ticks it saw and the longest
 * time the loop stood still, both against how long `fn` took.
 */
async function ticking(fn: () => Promise<unknown>): Promise<{ ticks: number; longestGapMs: number; tookMs: number }> {
  let last = performance.now();
  let longestGapMs = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longestGapMs = Math.max(longestGapMs, now - last);
    last = now;
    ticks++;
  }, 5);
  const started = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const end = performance.now();
  return { ticks, longestGapMs: Math.max(longestGapMs, end - last), tookMs: end - started };
}

describe(`a process with ${VMAS.toLocaleString('en-US')} VMAs`, () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  let pid = 0;
  let smapsBytes = 0;

  beforeAll(async () => {
    child = spawn('python3', [path.join(__dirname, 'fixtures', 'many-vmas.py'), String(VMAS)], { stdio: 'pipe', env: unsanitizedEnv() });
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child!.stdout }).once('line', resolve);
      child!.once('exit', (code) => reject(new Error(`many-vmas.py exited (${code})`)));
    });
    expect(line).toMatch(/^ready /);
    pid = child.pid!;
    const vmas = fs.readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n').length;
    expect(vmas).toBeGreaterThanOrEqual(VMAS);
    smapsBytes = fs.readFileSync(`/proc/${pid}/smaps`).length;
  }, 60_000);
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  const calls: Array<[string, () => Promise<unknown>]> = [
    ['regions()', () => regions(pid)],
    ['profit()', () => profit(pid)],
    ['estimate()', () => estimate(pid)],
    ['doctor({ pid })', () => doctor({ pid })],
  ];
  for (const [name, call] of calls) {
    it(`${name} keeps the event loop running while it reads`, async () => {
      // The same smaps read and parsed synchronously, for comparison: the loop stands still for all of it.
      let sync = { ticks: 0, longestGapMs: 0, tookMs: 0 };
      for (let i = 0; i < 3; i++) {
        const once = await ticking(async () => {
          parseSmaps(fs.readFileSync(`/proc/${pid}/smaps`, 'latin1'));
        });
        expect(once.ticks).toBe(0);
        if (sync.tookMs === 0 || once.tookMs < sync.tookMs) sync = once;
      }

      const run = await ticking(call);
      const what = `${name} took ${run.tookMs.toFixed(0)} ms over ${(smapsBytes / 1e6).toFixed(1)} MB of smaps; ${run.ticks} ticks, the loop stood still for ${run.longestGapMs.toFixed(0)} ms at most (a synchronous read and parse: ${sync.tookMs.toFixed(0)} ms)`;
      expect(run.ticks, what).toBeGreaterThan(0);
      expect(run.longestGapMs, what).toBeLessThan(sync.tookMs / 2);
    });
  }
});
