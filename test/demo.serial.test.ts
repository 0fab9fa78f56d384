/**
 * `npm run demo` on a fresh machine: KSM stopped (run=0) with the kernel's
 * slow defaults. As root the demo starts KSM, the workers merge, and every
 * knob is left exactly as it was found: at the end, on SIGINT and SIGTERM
 * mid-run, and when a worker dies. Not root: one message, nothing touched.
 *
 * Serial: this file stops ksmd, which every other test of the machine
 * needs; afterwards it puts the suite's own knobs back (test/setup/ksm-knobs.ts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { DemoResult } from '../lib/cli/demo/types.js';
import type { DemoJson } from '../lib/index.js';
import { KSM_DIR, alive, killDemos, npmDemo, npmDemoCommand, rawKnobs, shellStatus, start, until, workerPids, type RunningDemo } from './helpers/demo.js';
import { PAGE, rawKsmStat, requireKsm } from './helpers/ksm.js';
import { TEST_KNOBS } from './setup/ksm-knobs.js';

const MiB = 1024 * 1024;

/** A machine nobody tuned: ksmd stopped, 100 pages per 20 ms, smart_scan on. */
const FRESH: Array<[string, string]> = [
  ['advisor_mode', 'none'],
  ['pages_to_scan', '100'],
  ['sleep_millisecs', '20'],
  ['smart_scan', '1'],
  ['run', '0'],
];

function writeKnobs(knobs: Iterable<[string, string]>): void {
  for (const [name, value] of knobs) {
    const file = path.join(KSM_DIR, name);
    if (fs.existsSync(file)) fs.writeFileSync(file, value);
  }
}

function rawNumber(name: string): number {
  return Number(fs.readFileSync(path.join(KSM_DIR, name), 'utf8').trim());
}

let before: Record<string, string> = {};

beforeEach((ctx) => {
  requireKsm(ctx);
  writeKnobs(FRESH);
  before = rawKnobs();
});

afterEach(killDemos);

afterAll(() => {
  if (fs.existsSync(KSM_DIR) && process.getuid?.() === 0) writeKnobs(Object.entries(TEST_KNOBS));
});

/** Once the workers are up: the pids, and the knobs the demo set, read raw. */
async function workersUp(demo: RunningDemo, stream: 'stdout' | 'stderr'): Promise<number[]> {
  await until(() => /built their tables/.test(demo[stream]()), 'the workers', 120_000);
  const pids = workerPids(demo[stream]());
  expect(rawKnobs()).toEqual({ ...before, pages_to_scan: '1000', smart_scan: '0', run: '1' });
  for (const pid of pids) expect(alive(pid)).toBe(true);
  return pids;
}

describe('npm run demo as root on a fresh machine (KSM stopped, slow knobs)', () => {
  it('starts KSM, the workers merge (the JSON and the kernel agree), and every knob is put back', async () => {
    const demo = npmDemo(['-w', '2', '-s', '8MiB', '--interval', '100ms', '--timeout', '120s', '--json']);
    const pids = await workersUp(demo, 'stderr');
    // What the kernel says while the demo runs, read raw: the most each worker had merged.
    const merged = new Map(pids.map((pid) => [pid, 0]));
    let pagesSharing = 0;
    let closed = false;
    void demo.done.then(() => (closed = true));
    while (!closed) {
      for (const pid of pids) {
        try {
          const pages = Number(rawKsmStat(pid).ksm_merging_pages);
          // A worker the demo ended may read empty (a zombie) or be gone.
          if (Number.isFinite(pages)) merged.set(pid, Math.max(merged.get(pid)!, pages));
        } catch {
          /* gone */
        }
      }
      pagesSharing = Math.max(pagesSharing, rawNumber('pages_sharing'));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const run = await demo.done;
    expect(run.code, run.stderr).toBe(0);
    const tablePages = (8 * MiB) / PAGE;
    for (const pid of pids) expect(merged.get(pid), `pid ${pid}, raw ksm_merging_pages`).toBeGreaterThanOrEqual(0.98 * tablePages);
    expect(pagesSharing).toBeGreaterThanOrEqual(0.98 * tablePages);

    const doc = JSON.parse(run.stdout) as DemoJson & { result: DemoResult };
    expect(doc).toMatchObject({ kind: 'node-ksm/demo', version: 1 });
    const result = doc.result;
    expect(result).toMatchObject({ workers: 2, size: 8 * MiB, theoreticalSaving: 8 * MiB, settled: true, intact: true });
    expect(result.processes.map((p) => p.pid)).toEqual(pids);
    for (const p of result.processes) {
      expect(p.ksmStat.mergingPages).toBeGreaterThanOrEqual(0.98 * tablePages);
      expect(p.ksmStat.mergingPages).toBeLessThanOrEqual(merged.get(p.pid)!);
      expect(p.tableKsm).toBeGreaterThanOrEqual(0.98 * 8 * MiB);
    }
    expect(result.savedBytes).toBeGreaterThanOrEqual(0.9 * result.theoreticalSaving);
    expect(result.knobs).toEqual({
      set: { pagesToScan: 1000, smartScan: false, run: 1 },
      restored: { pagesToScan: 100, smartScan: true, run: 0 },
    });
    // Said in one line; put back once.
    expect(run.stderr.match(/KSM was stopped \(run=0\): started it for the demo \(pages_to_scan 100 -> 1000, smart_scan 1 -> 0, run 0 -> 1\)/g)).toHaveLength(1);
    expect(run.stderr).toContain('KSM knobs put back: pages_to_scan=100 smart_scan=1 run=0\n');
    expect(rawKnobs()).toEqual(before);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    console.log(`demo 2 x 8 MiB from run=0: saved ${result.savedBytes} of ${result.theoreticalSaving} bytes, settled after ${(result.elapsedMs / 1000).toFixed(1)} s`);
  });

  // 2 x 64 MiB: three scans of 32,768 pages at the demo's 50,000 pages/s take
  // about two seconds, ample time to stop it before it settles.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} to the job mid-run: workers stopped, every knob put back`, async () => {
      const demo = npmDemo(['-w', '2', '-s', '64MiB']);
      const pids = await workersUp(demo, 'stdout');
      process.kill(-demo.child.pid!, signal);
      const run = await demo.done;
      expect(shellStatus(run)).toBe(128 + os.constants.signals[signal]);
      expect(run.stderr).toBe('');
      expect(run.stdout).not.toContain('summary:');
      expect(run.stdout).toContain(`node-ksm demo: ${signal}: stopping the workers and putting the KSM knobs back\n`);
      expect(run.stdout).toContain('KSM knobs put back: pages_to_scan=100 smart_scan=1 run=0\n');
      expect(rawKnobs()).toEqual(before);
      for (const pid of pids) expect(alive(pid)).toBe(false);
    });
  }

  it('a worker dying mid-run is an error: exit 1, every knob put back', async () => {
    const demo = npmDemo(['-w', '2', '-s', '64MiB']);
    const pids = await workersUp(demo, 'stdout');
    process.kill(pids[0]!, 'SIGKILL');
    const run = await demo.done;
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`node-ksm: error: worker ${pids[0]} exited while the demo ran (SIGKILL)\n`);
    expect(run.stdout).toContain('KSM knobs put back: pages_to_scan=100 smart_scan=1 run=0\n');
    expect(rawKnobs()).toEqual(before);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});

describe('npm run demo as a user without root, KSM stopped', () => {
  it('says once why nothing can merge and the exact commands, and touches nothing', async () => {
    let nobody: string;
    try {
      execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
      nobody = execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim();
    } catch (error) {
      // .ci/run installs util-linux (setpriv); every Debian has the nobody user.
      throw new Error(`this test runs the demo as nobody through setpriv: ${(error as Error).message}`);
    }
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-demo-home-'));
    fs.chownSync(home, Number(nobody), Number(nobody));
    try {
      // CAP_DAC_READ_SEARCH (read, never write) so that the checkout is readable wherever it lives.
      const [command, args] = npmDemoCommand(['-w', '2', '-s', '8MiB']);
      const asNobody = start(
        'setpriv',
        ['--reuid', nobody, '--regid', nobody, '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search', command, ...args],
        { env: { ...process.env, HOME: home, npm_config_cache: path.join(home, '.npm'), npm_config_update_notifier: 'false' } },
      );
      const run = await asNobody.done;
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        'node-ksm: error: KSM is stopped (run=0), so nothing can merge, and starting it needs root. Either run the demo as root ' +
          '(it starts KSM and puts every knob back on exit):\n' +
          '  sudo npm run demo -- -w 2 -s 8MiB\n' +
          'or start KSM yourself:\n' +
          "  sudo sh -c 'echo 1000 > /sys/kernel/mm/ksm/pages_to_scan && echo 0 > /sys/kernel/mm/ksm/smart_scan && echo 1 > /sys/kernel/mm/ksm/run'\n",
      );
      expect(rawKnobs()).toEqual(before);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
