// 2. Time to merge: seconds from "data written" (every worker reported its
// buffer filled) to "settled" (the group's merged pages reached their final
// count), at pages_to_scan 100 / 1000 / 5000 and with the scan-time
// advisor; and the kernel selftest's own method (`ksm_tests -P -s 100`) in C
// and through node-ksm, so our MiB/s and the kernel's are comparable.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { readKnob, withKnobs } from '../lib/knobs.mjs';
import { MiB, fmt, median, repeat, secs, spread } from '../lib/stats.mjs';
import { startGroup, trackMerge } from '../lib/workers.mjs';

export const id = 'merge-time';
export const title = 'Time to merge';

const run$ = promisify(execFile);
const ADVISOR_TARGET_SEC = 5;
// ksm_tests defaults: -p 10 pages (its pages_to_scan), sleep_millisecs 0.
const SELFTEST_PAGES = 10;

/**
 * ksmd does the work on both sides, so a gap is either noise or a cost of
 * ours; with the samples' ranges overlapping, this machine cannot tell.
 */
function selftestVerdict(pairs, ratio) {
  if (ratio >= 0.9) return 'met';
  const node = pairs.map((p) => p.node.mibPerSec);
  const c = pairs.map((p) => p.c.mibPerSec);
  if (Math.max(...node) >= Math.min(...c)) {
    return `missed by ${fmt((1 - ratio) * 100, 0)}% on the medians; the runs' ranges overlap, so not distinguishable from noise here`;
  }
  return `missed by ${fmt((1 - ratio) * 100, 0)}%`;
}

async function timeGroup(ctx, n, bytes) {
  const group = await startGroup('node', n, { mode: 'alloc', size: bytes, seed: ctx.seed() });
  try {
    const track = await trackMerge(group, { timeoutMs: ctx.timeoutMs, pollMs: 20 });
    return { ...track, pagesToScan: Number(readKnob('pages_to_scan')) };
  } finally {
    await group.stop();
  }
}

async function compile(ctx) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-bench-'));
  const binary = path.join(dir, 'merge-time');
  await run$('cc', ['-O2', '-Wall', '-Wextra', '-o', binary, path.join(ctx.root, 'bench', 'workers', 'merge-time.c')]);
  return { binary, dispose: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

async function selftestMethod(ctx, sizeMiB, repeats) {
  const { binary, dispose } = await compile(ctx);
  const timeout = String(Math.round(ctx.timeoutMs / 1000));
  try {
    // One window, C and Node interleaved so drift hits both alike.
    return await withKnobs({ advisor_mode: 'none', sleep_millisecs: 0, pages_to_scan: SELFTEST_PAGES }, () =>
      repeat(repeats, async () => {
        const c = JSON.parse((await run$(binary, [String(sizeMiB), timeout])).stdout);
        const node = JSON.parse((await run$(process.execPath, [path.join(ctx.root, 'bench', 'workers', 'merge-time.cjs'), String(sizeMiB), timeout])).stdout);
        return { c, node };
      }),
    );
  } finally {
    dispose();
  }
}

export async function run(ctx) {
  const rows = [];
  const command = `npm run bench -- --only ${id}`;
  if (ctx.smoke) {
    // No global-knob windows in a smoke run: the selftest method at the
    // current knobs only, tiny.
    const { binary, dispose } = await compile(ctx);
    try {
      const c = JSON.parse((await run$(binary, ['2', '60'])).stdout);
      rows.push({ figure: 'selftest method, 2 MiB (smoke, current knobs)', measured: `${fmt(c.mibPerSec, 0)} MiB/s`, comparedWith: 'n/a', ratio: undefined, target: '', verdict: c.ok ? 'ran' : 'timed out' });
    } finally {
      dispose();
    }
    return { rows, command };
  }
  const n = ctx.quick ? 2 : 4;
  const sizeMiB = ctx.quick ? 16 : 64;
  const bytes = sizeMiB * MiB;
  const repeats = ctx.quick ? 1 : 3;
  const selftestRepeats = ctx.quick ? 1 : 5;
  const settings = [
    { label: 'pages_to_scan 100', knobs: { advisor_mode: 'none', pages_to_scan: 100, sleep_millisecs: 20 } },
    { label: 'pages_to_scan 1000', knobs: { advisor_mode: 'none', pages_to_scan: 1000, sleep_millisecs: 20 } },
    { label: 'pages_to_scan 5000', knobs: { advisor_mode: 'none', pages_to_scan: 5000, sleep_millisecs: 20 } },
  ];
  if (readKnob('advisor_mode') !== undefined) {
    settings.push({
      label: `scan-time advisor (target ${ADVISOR_TARGET_SEC} s)`,
      knobs: { sleep_millisecs: 20, advisor_target_scan_time: ADVISOR_TARGET_SEC, advisor_mode: 'scan-time' },
      alsoRestore: ['pages_to_scan'],
    });
  }
  const measured = [];
  for (const setting of settings) {
    // One short window per repeat: other people's runs get their knobs back in between.
    // pages_to_scan 100 takes a full scan of every mergeable page on the
    // machine per ~50 pages/10 ms: two runs of it keep the suite short.
    const times = setting.knobs.pages_to_scan === 100 && !ctx.quick ? Math.min(2, repeats) : repeats;
    const runs = await repeat(times, () =>
      withKnobs(setting.knobs, () => timeGroup(ctx, n, bytes), { alsoRestore: setting.alsoRestore ?? [] }),
    );
    const settled = median(runs.map((r) => r.settled));
    const t99 = median(runs.map((r) => r.t99));
    measured.push({ setting, runs, settled, t99 });
    ctx.log(`merge-time ${setting.label}: 99% ${secs(t99)}, settled ${secs(settled)}, pages_to_scan at end ${runs.map((r) => r.pagesToScan).join('/')}`);
  }
  const reference = measured.find((m) => m.setting.label === 'pages_to_scan 100');
  for (const m of measured) {
    const totalMiB = n * sizeMiB;
    const timedOut = m.runs.filter((r) => r.timedOut).length;
    rows.push({
      figure: `N=${n} x ${sizeMiB} MiB, ${m.setting.label}, sleep 20 ms: data written -> settled`,
      measured: `${secs(m.settled)} (${fmt(totalMiB / (m.settled / 1000), 0)} MiB/s; 99% at ${secs(m.t99)})`,
      comparedWith: m === reference ? 'itself (the kernel default)' : `pages_to_scan 100: ${secs(reference.settled)}`,
      ratio: m === reference ? undefined : m.settled / reference.settled,
      target: '',
      verdict: timedOut ? `${timedOut}/${m.runs.length} timed out` : 'measured',
      notes: m.setting.label.startsWith('scan-time')
        ? `${spread(m.runs.map((r) => r.settled))}; advisor ended at pages_to_scan ${m.runs.map((r) => r.pagesToScan).join(' / ')}; ratio = time against pages_to_scan 100`
        : `${spread(m.runs.map((r) => r.settled))}; ratio = time against pages_to_scan 100 (below 1: sooner)`,
    });
  }

  const selftestMiB = ctx.quick ? 32 : 100;
  const pairs = await selftestMethod(ctx, selftestMiB, selftestRepeats);
  const cSpeed = median(pairs.map((p) => p.c.mibPerSec));
  const nodeSpeed = median(pairs.map((p) => p.node.mibPerSec));
  ctx.log(`merge-time selftest method: C ${fmt(cSpeed, 0)} MiB/s, node-ksm ${fmt(nodeSpeed, 0)} MiB/s`);
  rows.push({
    figure: `selftest method (\`ksm_tests -P -s ${selftestMiB}\`: sleep 0, pages_to_scan ${SELFTEST_PAGES}) through node-ksm`,
    measured: `${fmt(nodeSpeed, 0)} MiB/s`,
    comparedWith: `the same method in C (bench/workers/merge-time.c): ${fmt(cSpeed, 0)} MiB/s`,
    ratio: nodeSpeed / cSpeed,
    target: '~1x (ksmd does the work)',
    verdict: selftestVerdict(pairs, nodeSpeed / cSpeed),
    notes: `${spread(pairs.map((p) => p.node.mibPerSec), (v) => `${fmt(v, 0)}`)} MiB/s through node-ksm, ${spread(pairs.map((p) => p.c.mibPerSec), (v) => `${fmt(v, 0)}`)} MiB/s in C; ` +
      'one process, every byte \'*\', clock from madvise to two completed full scans, busy-polling full_scans as the selftest does; ' +
      '`run` is never written (the selftest writes 2 first, which would unmerge everyone on a shared machine)',
  });
  return {
    rows,
    command,
    method: [
      `Workload: N=${n} Node workers, ${sizeMiB} MiB each in allocMergeable Buffers, the same bytes in every worker. ` +
        '"Written" is when the last worker reported its buffer filled; "settled" is the moment the group\'s merged ' +
        'pages (`ksm_merging_pages` of each worker, polled every 20 ms) reached every page of the buffers (or stopped ' +
        'changing for two full scans). Each setting is a separate knob window; ' +
        'sleep_millisecs is the kernel default 20 throughout.',
      `The scan-time advisor ran with advisor_target_scan_time ${ADVISOR_TARGET_SEC} s (the kernel default, 200 s, ` +
        'is meant for machines with far more memory) and the kernel\'s default CPU and pages bounds.',
    ],
  };
}
