// Real packages in 4 `cluster` workers opted in with node-ksm/register
// (bench/workers/node-service.cjs): anonymous memory, the exact fair-share
// saving (profit() page by page, summed over the workers), the share of
// anonymous memory saved, the time to settle, and estimate() made when the
// workers were ready against what KSM then merged. The saving is also split
// by what the memory is (profit()'s kinds and labels).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { createRequire } from 'node:module';

import { groupSaving, smaps, sysfsNumber, waitFullScans } from '../lib/kernel.mjs';
import { mib, pct, retryStopped, secs } from '../lib/stats.mjs';

export const id = 'node-workloads';
export const title = 'What merges in a Node service: real packages in 4 cluster workers';

function startService(ctx, workers, rows) {
  const child = spawn(process.execPath, ['--require', 'node-ksm/register', path.join(ctx.root, 'bench', 'workers', 'node-service.cjs')], {
    cwd: ctx.root,
    env: { ...process.env, WORKERS: String(workers), SQL_ROWS: String(rows), NODE_KSM_QUIET: '1' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const lines = readline.createInterface({ input: child.stdout });
  const ready = new Promise((resolve, reject) => {
    const got = [];
    lines.on('line', (line) => {
      got.push(JSON.parse(line));
      if (got.length === workers) resolve(got);
    });
    exited.then((code) => reject(new Error(`the service exited (${code})`)));
  });
  return {
    ready,
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const anonymousOf = (pid) => smaps(pid).reduce((sum, vma) => sum + vma.anonymous, 0);

/** Polls the group's exact saving until it grew by less than 1% over two full scans. */
async function settle(pids, timeoutMs) {
  const t0 = performance.now();
  let last = groupSaving(pids.map((pid) => ({ pid }))).savedBytes;
  for (;;) {
    if (!(await waitFullScans(2, timeoutMs))) break;
    const now = groupSaving(pids.map((pid) => ({ pid }))).savedBytes;
    if (now > 0 && now - last < 0.01 * now) return performance.now() - t0;
    last = now;
    if (performance.now() - t0 > timeoutMs) break;
  }
  return performance.now() - t0;
}

async function once(ctx, workers, rows) {
  const require = createRequire(path.join(ctx.root, 'package.json'));
  const ksm = require(path.join(ctx.root, 'dist', 'index.js'));
  const service = startService(ctx, workers, rows);
  try {
    const lines = await service.ready;
    const pids = lines.map((l) => l.pid);
    if (!lines.every((l) => l.mergeAny)) throw new Error('a worker did not register');
    const anonymousBytes = pids.reduce((sum, pid) => sum + anonymousOf(pid), 0);
    // Before KSM settles: what the estimator predicts for these processes as they are.
    const estimate = await ksm.estimate(pids);
    const settleMs = await settle(pids, ctx.timeoutMs);
    const group = groupSaving(pids.map((pid) => ({ pid })));
    const byKind = new Map();
    let fairShare = 0;
    const keyOf = (row) => (row.kind === 'malloc-chunk' || row.kind === 'wasm-memory' || row.kind === 'anonymous' ? `${row.kind}${row.label ? ` (${row.label})` : ''}` : row.kind);
    for (const pid of pids) {
      const report = await ksm.profit(pid, { exact: true });
      fairShare += report.total.savedBytes + report.total.zeroPageBytes;
      for (const row of report.regions) {
        const entry = byKind.get(keyOf(row)) ?? { saved: 0, anonymous: 0 };
        entry.saved += row.savedBytes;
        byKind.set(keyOf(row), entry);
      }
      // What each kind holds: resident anonymous bytes, from regions() (profit() rows are split at labels).
      for (const region of (await ksm.regions(pid)).regions) {
        const entry = byKind.get(keyOf(region)) ?? { saved: 0, anonymous: 0 };
        entry.anonymous += region.anonymous ?? 0;
        byKind.set(keyOf(region), entry);
      }
    }
    const anonAfter = pids.reduce((sum, pid) => sum + anonymousOf(pid), 0);
    return { pids, anonymousBytes, anonAfter, predicted: estimate.predictedSavedBytes, settleMs, group, fairShare, byKind, loadMs: Math.max(...lines.map((l) => l.loadMs)) };
  } finally {
    await service.stop();
  }
}

export async function run(ctx) {
  const workers = ctx.smoke ? 2 : 4;
  const rows = ctx.smoke ? 2000 : 200_000;
  const result = await retryStopped(() => once(ctx, workers, rows));
  const knobs = `pages_to_scan ${sysfsNumber('pages_to_scan')}, sleep_millisecs ${sysfsNumber('sleep_millisecs')}`;
  ctx.log(`node-workloads: anon ${mib(result.anonymousBytes)}, saved ${mib(result.fairShare)}, predicted ${mib(result.predicted)}, settled ${secs(result.settleMs)}`);
  const breakdown = [...result.byKind].filter(([, v]) => v.saved >= 1048576).sort((a, b) => b[1].saved - a[1].saved);
  const out = [
    {
      figure: `${workers} cluster workers (geoip-lite, tiktoken, sql.js ${rows} rows, typescript), \`--require node-ksm/register\`: saved, exact fair shares`,
      measured: `${mib(result.fairShare)} of ${mib(result.anonymousBytes)} anonymous`,
      comparedWith: `the group's own page tables (KSM pages mapped k times save k-1): ${mib(result.group.savedBytes)}`,
      ratio: `${pct(result.fairShare / result.anonymousBytes)} of anonymous memory saved`,
      target: '',
      verdict: 'measured',
      notes: `rmap_items ${result.group.rmapItems} (${mib(result.group.rmapItems * 64)} of metadata); anonymous after settling ${mib(result.anonAfter)}`,
    },
    {
      figure: `the same: estimate() when the workers were ready, against KSM settled`,
      measured: `predicted ${mib(result.predicted)}`,
      comparedWith: `merged: ${mib(result.fairShare)}`,
      ratio: result.predicted / result.fairShare,
      target: 'within 2%',
      verdict: Math.abs(result.predicted / result.fairShare - 1) <= 0.02 ? 'met' : 'not met',
      notes: 'the V8 heap keeps changing after start-up (GC, JIT): pages estimated as twins can differ by the time ksmd visits',
    },
    {
      figure: 'the same: workers ready -> saving settled (grew < 1% over two full scans)',
      measured: secs(result.settleMs),
      comparedWith: `loading the packages took ${secs(result.loadMs)}`,
      ratio: result.settleMs / result.loadMs,
      target: '',
      verdict: 'measured',
      notes: knobs,
    },
    ...breakdown.map(([kind, v]) => ({
      figure: `the same, saved in ${kind}`,
      measured: `${mib(v.saved)} of ${mib(v.anonymous)} anonymous`,
      comparedWith: `${pct(v.saved / result.fairShare)} of the saving`,
      ratio: v.anonymous > 0 ? `${pct(v.saved / v.anonymous)} of it saved` : '',
      target: '',
      verdict: 'measured',
      notes: "profit() exact rows of the workers, by kind and label; anonymous: regions()' resident anonymous bytes of the same kind (a labelled VMA's whole bytes count under its label)",
    })),
  ];
  return {
    rows: out,
    command: `npm run bench -- --only ${id}`,
    method: [
      `One run: a cluster primary started with \`node --require node-ksm/register bench/workers/node-service.cjs\` forks ${workers} workers; each loads geoip-lite, tiktoken (cl100k_base), sql.js with a ${rows}-row table and typescript (transpiling 2,000 functions), naming each library's memory with labelAllocations().`,
      'Anonymous memory: the sum of smaps Anonymous over the workers when all are ready. estimate(pids) runs then; the saving is followed (bench/lib/kernel.mjs groupSaving, page tables) until it grows by less than 1% over two full scans.',
      "Saved: profit(pid, { exact: true }) summed over the workers (fair shares, zero pages included), beside the group's own KSM-page count; split by profit()'s kinds and labels.",
    ],
  };
}
