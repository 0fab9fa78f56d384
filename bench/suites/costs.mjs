// What merging costs: a write to a merged page (a copy-on-write fault)
// against a write to an ordinary one, by the selftest's `ksm_tests -C`
// method through node-ksm (bench/workers/cow.cjs), and ksmd's CPU time per
// MiB merged at the bench knobs, both side by side in one run.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { sysfsNumber } from '../lib/kernel.mjs';
import { fmt, median, ratio, retryStopped } from '../lib/stats.mjs';

export const id = 'costs';
export const title = 'What merging costs: copy-on-write breaks and ksmd CPU';

function ksmdPid() {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim() === 'ksmd') return Number(name);
    } catch {
      // gone
    }
  }
  throw new Error('no ksmd');
}

function once(ctx, ksmd) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(ctx.root, 'bench', 'workers', 'cow.cjs'), String(ksmd)], { timeout: 180_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop()));
    });
  });
}

export async function run(ctx) {
  const repeats = ctx.smoke ? 1 : ctx.quick ? 3 : 7;
  const ksmd = ksmdPid();
  const runs = [];
  for (let i = 0; i < repeats; i++) runs.push(await retryStopped(() => once(ctx, ksmd)));
  const m = (f) => median(runs.map(f));
  const plainNs = m((r) => r.plainNs);
  const cowNs = m((r) => r.cowNs);
  const cpuPerMiB = m((r) => r.ksmdCpuNs / 1e6 / (r.mergedBytes / 1048576));
  const knobs = `pages_to_scan ${sysfsNumber('pages_to_scan')}, sleep_millisecs ${sysfsNumber('sleep_millisecs')}`;
  ctx.log(`costs: write ${fmt(plainNs, 0)} ns ordinary, ${fmt(cowNs, 0)} ns merged; ksmd ${fmt(cpuPerMiB, 1)} ms CPU per MiB merged`);
  return {
    rows: [
      {
        figure: 'write fault on a merged page (`ksm_tests -C` method: 1 byte into every other of 4000 pages)',
        measured: `${fmt(cowNs / 1000, 2)} µs per page written (cow_ksm +${m((r) => r.breaks)} of ${runs[0].written} writes)`,
        comparedWith: `the same write to an ordinary present page: ${fmt(plainNs, 0)} ns`,
        ratio: cowNs / plainNs,
        target: '',
        verdict: 'measured',
        notes: 'each write to a merged page is a copy-on-write fault: a page allocated and 4 KiB copied',
      },
      {
        figure: `ksmd CPU time per MiB merged (${knobs})`,
        measured: `${fmt(cpuPerMiB, 2)} ms per MiB`,
        comparedWith: `the wall time to merge it: ${fmt(m((r) => r.mergeMs / (r.mergedBytes / 1048576)), 1)} ms per MiB`,
        ratio: `${ratio(m((r) => r.ksmdCpuNs / 1e6 / r.mergeMs))} of a CPU while merging`,
        target: '',
        verdict: 'measured',
        notes: `4000 pages in identical pairs, from written to 98% merged (ksm_merging_pages); ksmd's schedstat. ksmd also scans every other mergeable page of the machine meanwhile: an upper bound`,
      },
    ],
    command: `npm run bench -- --only ${id}`,
    method: [
      `Per run, a fresh Node process (bench/workers/cow.cjs) holds 4000 pages in allocMergeable memory; ${repeats} runs, medians.`,
      'Ordinary: every page distinct and present, one byte written into every other page, timed with process.hrtime. Merged: the pages rewritten as identical pairs, waited for until ksm_merging_pages covers 98% of them, then the same writes: each is a copy-on-write break (cow_ksm counts them).',
      "ksmd CPU: its /proc/PID/schedstat run time from the pairs written to merged, over the MiB merged.",
    ],
  };
}
