/**
 * The bench harness, run with tiny sizes (`--smoke`): it runs every suite,
 * measures real merging, writes its report, and leaves the machine's knobs as
 * it found them. No figure here is a performance claim; benchmarks proper
 * run with `npm run bench`, never in the test suite.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it, vi } from 'vitest';

import { cpuHasAvx2 } from './helpers/hash.js';
import { ROOT, requireKsm, unsanitizedEnv } from './helpers/ksm.js';

// The harness is ESM (.mjs); this file compiles to CommonJS: dynamic imports.
type Report = import('../bench/lib/report.mjs', { with: { 'resolution-mode': 'import' } }).Report;
const harness = async () => ({
  ...(await import('../bench/lib/report.mjs')),
  ...(await import('../bench/suites/efficiency.mjs')),
});

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-bench-smoke-'));

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// What a smoke run must leave as it found it. (The KSM knobs are not
// compared here: other runs' serial tests move them at any time; the knob
// windows are tested below on a scratch tree.)
function knobs(): Record<string, string | undefined> {
  const thp = '/sys/kernel/mm/transparent_hugepage/enabled';
  // A kernel without CONFIG_TRANSPARENT_HUGEPAGE has no file: nothing to leave alone.
  return { thp: fs.existsSync(thp) ? fs.readFileSync(thp, 'utf8').trim() : undefined };
}

describe('bench harness (--smoke)', () => {
  it('runs every suite, writes BENCHMARKS-style Markdown and JSON, and restores the knobs', async (ctx) => {
    requireKsm(ctx);
    const markdown = path.join(dir, 'BENCHMARKS.md');
    const json = path.join(dir, 'bench.json');
    const before = knobs();
    await run(process.execPath, [path.join(ROOT, 'bench', 'run.mjs'), '--smoke', '--out', markdown, '--json', json], {
      cwd: ROOT,
      // Under test:asan the harness and its workers run the normal build: they
      // measure, they are not under test, and sanitized Node processes with
      // merge-any (its enable-merge suite) keep ksmd walking ASan's shadow.
      env: unsanitizedEnv(),
      timeout: 110_000,
    });
    expect(knobs()).toEqual(before);

    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as Report;
    expect(report.mode).toBe('smoke');
    expect(report.results.map((r) => r.id)).toEqual(['efficiency', 'merge-time', 'enable-merge', 'peer', 'alloc', 'thp', 'costs', 'node-workloads', 'external', 'v8-heap']);
    for (const result of report.results) {
      expect(result.error, result.id).toBeUndefined();
      expect(result.rows.length, result.id).toBeGreaterThan(0);
    }

    // Two workers with the same 2 MiB merge to the kernel's limit: the
    // group's own page tables say so, whatever else runs on the machine.
    const efficiency = report.results.find((r) => r.id === 'efficiency')!.rows[0]!;
    expect(typeof efficiency.ratio).toBe('number');
    expect(efficiency.ratio as number).toBeGreaterThan(0.95);
    expect(efficiency.ratio as number).toBeLessThanOrEqual(1.0001);

    const text = fs.readFileSync(markdown, 'utf8');
    expect(text).toMatch(/^# Benchmarks/);
    expect(text).toContain('## Machine');
    expect(text).toContain(`Linux ${os.release()}`);
    const summary = text.slice(text.indexOf('## Summary'), text.indexOf('\n## ', text.indexOf('## Summary') + 1));
    const numbers = new Set([...summary.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1])));
    expect([...numbers].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });
});

describe('bench/estimate.mjs (--smoke)', () => {
  // Its in-place hash and bandwidth baselines come from the bench's own
  // addon (bench/native), which it builds itself: never part of the
  // package's build (build/Release, what prebuildify packs) or of prebuilds/.
  it('builds the bench-only addon apart from the shipped one and measures with it', async (ctx) => {
    requireKsm(ctx);
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bench', 'estimate.mjs'), '--smoke', '--json'], {
      cwd: ROOT,
      env: unsanitizedEnv(),
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
      speed: {
        mib: number;
        rounds: number;
        readGBs: number;
        hashInPlace: { implementation: string; pagesPerSec: number };
        hashInPlaceScalar: { pagesPerSec: number };
        kernelCopy: { pagesPerSec: number };
        estimateSelf: { samplePagesPerSec: number; pagesHashed: number };
      };
      accuracy: { skipped?: string };
    };
    expect(report.speed).toMatchObject({ mib: 8, rounds: 1 });
    expect(report.speed.hashInPlace.implementation).toBe(cpuHasAvx2() ? 'avx2' : 'scalar');
    for (const figure of [report.speed.readGBs, report.speed.hashInPlace.pagesPerSec, report.speed.hashInPlaceScalar.pagesPerSec, report.speed.kernelCopy.pagesPerSec, report.speed.estimateSelf.samplePagesPerSec]) {
      expect(Number.isFinite(figure) && figure > 0, String(figure)).toBe(true);
    }
    // The 8 MiB buffer, and the few pages around it that share its VMA.
    expect(report.speed.estimateSelf.pagesHashed).toBeGreaterThanOrEqual(2048);
    expect(report.accuracy.skipped).toMatch(/--smoke/);

    const { BENCH_ADDON } = await import('../bench/lib/addon.mjs');
    expect(fs.existsSync(BENCH_ADDON)).toBe(true);
    expect(path.relative(ROOT, BENCH_ADDON)).toMatch(/^bench\/native\/build\//);
    const exports = await run(process.execPath, ['-p', `JSON.stringify(Object.keys(require(${JSON.stringify(BENCH_ADDON)})).sort())`], { env: unsanitizedEnv() });
    expect(JSON.parse(exports.stdout)).toEqual(['hashPages', 'readBandwidth', 'vmReadBandwidth']);
  }, 320_000);
});

describe('bench report', () => {
  const report: Report = {
    mode: 'full',
    startedAt: '2026-01-01T01:02:03.000Z',
    seconds: 61,
    machine: { cores: 2, cpu: 'cpu', memoryGiB: 24, kernel: '6.18.0', arch: 'x64', thpEnabled: 'madvise', thpDefrag: 'madvise', knobs: { run: '0' } },
    activity: [{ vitest: 0, ksmUsers: 0 }],
    results: [
      {
        id: 'efficiency',
        title: 'Merge efficiency',
        seconds: 10,
        command: 'npm run bench -- --only efficiency',
        rows: [{ figure: 'N=4 | x', measured: '97.9%', comparedWith: 'limit', ratio: 1, target: '>= 97%', verdict: 'met', notes: 'note' }],
      },
      { id: 'external', title: 'Reporting and estimate', seconds: 0, rows: [{ suite: 'profit', figure: 'profit()', measured: 'pending', command: 'npm run bench -- --only profit' }] },
      { id: 'alloc', title: 'Allocation', seconds: 1, error: 'boom', rows: [] },
    ],
  };

  it('puts every row in the summary with its number, ratio, target and command', async () => {
    const { render } = await harness();
    const text = render(report);
    expect(text).toContain('| 1 | N=4 \\| x | 97.9% | limit | 1.00x | >= 97% | met | `npm run bench -- --only efficiency` |');
    expect(text).toContain('| 7 | profit() | pending |');
    expect(text).toContain('| 5 | Allocation | failed: boom |');
    expect(text).toContain('**Failed:** boom');
    expect(text).not.toContain('Shared machine');
  });

  it('says the machine was shared when others ran', async () => {
    const { render } = await harness();
    const text = render({ ...report, activity: [{ vitest: 0, ksmUsers: 0 }, { vitest: 3, ksmUsers: 2 }], knobsOverwritten: 4 });
    expect(text).toContain('up to 3 vitest process(es) and 2 other KSM-using process(es)');
    expect(text).toContain('4 time(s)');
  });

  it('takes the kernel limit as (N-1) x S less 64 B per scanned page', async () => {
    const { kernelLimit } = await harness();
    const bytes = 64 * 1024 * 1024;
    expect(kernelLimit(4, bytes)).toBe(3 * bytes - 4 * 16384 * 64);
    expect(kernelLimit(4, bytes) / (3 * bytes)).toBeCloseTo(1 - 4 / (64 * 3), 12);
  });
});

describe('bench knob windows (scratch sysfs)', () => {
  // The bench's knob code against a fake /sys: restores in the kernel's
  // order, puts back what another run overwrites, and leaves the machine's
  // knobs to the last holder.
  it('sets, holds and restores KSM knobs and THP, and restores the machine\'s knobs as the last holder', async () => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-bench-sysfs-'));
    const ksmDir = path.join(scratch, 'kernel/mm/ksm');
    const thpFile = path.join(scratch, 'kernel/mm/transparent_hugepage/enabled');
    fs.mkdirSync(ksmDir, { recursive: true });
    fs.mkdirSync(path.dirname(thpFile), { recursive: true });
    const initial: Record<string, string> = { run: '0', pages_to_scan: '100', sleep_millisecs: '20', advisor_mode: '[none] scan-time', advisor_target_scan_time: '200' };
    for (const [name, value] of Object.entries(initial)) fs.writeFileSync(path.join(ksmDir, name), value);
    fs.writeFileSync(thpFile, 'always [madvise] never');
    const read = (name: string) => fs.readFileSync(path.join(ksmDir, name), 'utf8');
    process.env.NODE_KSM_BENCH_SYSFS = scratch;
    try {
      vi.resetModules();
      const knobs = await import('../bench/lib/knobs.mjs');
      knobs.joinKsm();
      expect([read('run'), read('pages_to_scan'), read('sleep_millisecs')]).toEqual(['1', '5000', '10']);

      await knobs.withKnobs({ pages_to_scan: 100, sleep_millisecs: 20 }, async () => {
        expect(read('pages_to_scan')).toBe('100');
        fs.writeFileSync(path.join(ksmDir, 'pages_to_scan'), '5000'); // another run's setup
        await new Promise((resolve) => setTimeout(resolve, 150));
        expect(read('pages_to_scan')).toBe('100');
      });
      expect(knobs.knobsOverwritten()).toBeGreaterThanOrEqual(1);
      expect([read('pages_to_scan'), read('sleep_millisecs')]).toEqual(['5000', '10']);

      // The advisor moves pages_to_scan itself: put back after, never held.
      await knobs.withKnobs({ advisor_mode: 'scan-time' }, () => {
        fs.writeFileSync(path.join(ksmDir, 'pages_to_scan'), '30000');
      }, { alsoRestore: ['pages_to_scan'] });
      expect([read('advisor_mode'), read('pages_to_scan')]).toEqual(['none', '5000']);

      await expect(knobs.withKnobs({ pages_to_scan: 1000 }, () => { throw new Error('suite failed'); })).rejects.toThrow('suite failed');
      expect(read('pages_to_scan')).toBe('5000');

      await knobs.withThp('always', () => expect(fs.readFileSync(thpFile, 'utf8')).toBe('always'));
      expect(fs.readFileSync(thpFile, 'utf8')).toBe('madvise');

      knobs.leaveKsm();
      expect([read('run'), read('pages_to_scan'), read('sleep_millisecs'), read('advisor_mode')]).toEqual(['0', '100', '20', 'none']);
      expect(fs.existsSync(path.join(scratch, 'node-ksm-test-knobs.json'))).toBe(false);
    } finally {
      delete process.env.NODE_KSM_BENCH_SYSFS;
      vi.resetModules();
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  });
});
