/**
 * Transparent huge pages for a test that needs a MADV_HUGEPAGE mapping to
 * get them. As root, each THP knob that would refuse them is set for the
 * length of the test only, and put back when it ends, pass or fail.
 */
import * as fs from 'node:fs';
import type { TestContext } from 'vitest';

import { needs } from './needs.js';

export const THP = '/sys/kernel/mm/transparent_hugepage';

/** The bracketed choice of a THP knob ("always [madvise] never"), or undefined where the file is missing. */
export function thpChoice(file: string): string | undefined {
  try {
    const text = fs.readFileSync(`${THP}/${file}`, 'utf8');
    return /\[([^\]]+)\]/.exec(text)?.[1] ?? text.trim();
  } catch {
    return undefined;
  }
}

/**
 * Makes MADV_HUGEPAGE memory get PMD-sized huge pages, with compaction at
 * fault time: `enabled` always or madvise, `defrag` compacting for madvised
 * memory, and the PMD size's own mTHP switch (6.8+) not `never`. Returns the
 * mode then in force and the PMD size.
 */
export function thpForMadvise(ctx: TestContext): { enabled: string; pmdBytes: number } {
  needs(ctx, thpChoice('enabled') !== undefined, `transparent huge pages (${THP}: a kernel built with CONFIG_TRANSPARENT_HUGEPAGE)`);
  const pmdBytes = Number(fs.readFileSync(`${THP}/hpage_pmd_size`, 'utf8'));
  const wanted: Array<[file: string, accepted: string[], set: string]> = [
    ['enabled', ['always', 'madvise'], 'madvise'],
    ['defrag', ['always', 'defer+madvise', 'madvise'], 'madvise'],
    [`hugepages-${pmdBytes / 1024}kB/enabled`, ['always', 'inherit', 'madvise'], 'inherit'],
  ];
  const changed: Array<[file: string, value: string]> = [];
  ctx.onTestFinished(() => {
    for (const [file, value] of changed.reverse()) fs.writeFileSync(`${THP}/${file}`, value);
  });
  for (const [file, accepted, set] of wanted) {
    const choice = thpChoice(file);
    if (choice === undefined || accepted.includes(choice)) continue;
    changed.push([file, choice]);
    fs.writeFileSync(`${THP}/${file}`, set);
  }
  return { enabled: thpChoice('enabled')!, pmdBytes };
}
