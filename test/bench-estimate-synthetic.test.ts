/**
 * bench/estimate-synthetic.mjs at its smoke size: holders of a known layout,
 * estimate({ all: true }) over the whole machine, and the estimator's
 * prediction for the holders' mappings against the layout, worked out here
 * from the page counts alone. No figure here is a performance claim.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

import { ROOT, unsanitizedEnv } from './helpers/ksm.js';

const run = promisify(execFile);
const WORKER = path.join(ROOT, 'bench', 'workers', 'synthetic.py');

/** Live holders of this checkout's worker, read from /proc (not from the bench). */
function holdersAlive(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(WORKER)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

interface Size {
  bytes: number;
  memoryBytes: number;
  pagesHashed: number;
  holders: { matched: number; savedPages: number; zeroPages: number; candidatePages: number };
  expectedSavedBytes: number;
  predictedHolderBytes: number;
}

describe('bench/estimate-synthetic.mjs (--smoke)', () => {
  it("predicts exactly what the holders' layout saves, at both sizes, and leaves no holder behind", async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'bench', 'estimate-synthetic.mjs'), '--smoke', '--json'], {
      cwd: ROOT,
      env: unsanitizedEnv(),
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(stdout.trim().split('\n').pop()!) as { processes: number; sizes: Size[]; rows: Array<{ figure: string; verdict: string }> };
    expect(report.processes).toBe(4);
    expect(report.sizes.map((s) => s.bytes)).toEqual([16 * 2 ** 20, 64 * 2 ** 20]);
    for (const size of report.sizes) {
      // Per holder: half its pages shared by all 4 (each class keeps one copy), an eighth zero (all go), the rest random.
      const pages = size.bytes / 4 / 4096;
      const expected = 4 * ((pages / 2) * (3 / 4) + pages / 8) * 4096;
      expect(size.expectedSavedBytes).toBe(expected);
      expect(size.holders.matched).toBe(4);
      expect(size.predictedHolderBytes).toBe(expected);
      expect(size.holders.candidatePages).toBe(4 * pages);
      expect(size.holders.zeroPages).toBe(4 * (pages / 8));
      expect(size.pagesHashed).toBeGreaterThanOrEqual(4 * pages);
      expect(size.memoryBytes).toBeGreaterThan(0);
    }
    expect(report.rows.at(-1)!.figure).toMatch(/^EXTRAPOLATION \(not measured\)/);
    expect(holdersAlive()).toEqual([]);
  });
});
