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
import { afterAll, describe, expect, it } from 'vitest';

import { ROOT, requireKsm } from './helpers/ksm.js';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-bench-smoke-'));

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// What a smoke run must leave as it found it. (pages_to_scan and friends
// are not compared: serial tests of other runs on this machine move them.)
function knobs(): Record<string, string> {
  return {
    run: fs.readFileSync('/sys/kernel/mm/ksm/run', 'utf8').trim(),
    thp: fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8').trim(),
  };
}

interface Row {
  figure: string;
  ratio?: number | string;
  suite?: string;
}
interface Report {
  mode: string;
  results: Array<{ id: string; error?: string; rows: Row[] }>;
}

describe('bench harness (--smoke)', () => {
  it('runs every suite, writes BENCHMARKS-style Markdown and JSON, and restores the knobs', async (ctx) => {
    requireKsm(ctx);
    const markdown = path.join(dir, 'BENCHMARKS.md');
    const json = path.join(dir, 'bench.json');
    const before = knobs();
    await run(process.execPath, [path.join(ROOT, 'bench', 'run.mjs'), '--smoke', '--out', markdown, '--json', json], {
      cwd: ROOT,
      timeout: 110_000,
    });
    expect(knobs()).toEqual(before);

    const report = JSON.parse(fs.readFileSync(json, 'utf8')) as Report;
    expect(report.mode).toBe('smoke');
    expect(report.results.map((r) => r.id)).toEqual(['efficiency', 'merge-time', 'enable-merge', 'peer', 'alloc', 'thp', 'external']);
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
    const numbers = new Set([...summary.matchAll(/^\| (\d) \|/gm)].map((m) => Number(m[1])));
    expect([...numbers].sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
