// profit()/regions() cost against the kernel's own cost of producing smaps,
// measured in one run, interleaved; and exact mode's cost per GiB merged.
//
//   node bench/profit.mjs [--vmas 10000] [--mib 256] [--runs 15]
//
// Needs a built package (npm run build). The exact part needs root and
// running KSM; it sets pages_to_scan to 5000 for the merge and puts it back.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { profit, regions, formatBytes, formatTable, waitForMerge } from '../dist/index.mjs';

const { values } = parseArgs({
  options: {
    vmas: { type: 'string', default: '10000' },
    mib: { type: 'string', default: '256' },
    runs: { type: 'string', default: '15' },
  },
});
const RUNS = Number(values.runs);
const CHILD = fileURLToPath(new URL('./profit.child.cjs', import.meta.url));

function start(spec) {
  const child = fork(CHILD, [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`bench child exited (${code})`)));
  });
}

function median(list) {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

// CPU time of the whole process (all threads, user + system): the kernel's
// work on the read counts, other processes' load on this machine does not.
async function cpu(fn) {
  const c0 = process.cpuUsage();
  await fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

const rows = [];

// 1. Parse overhead on a process with many VMAs.
{
  const child = await start({ vmas: Number(values.vmas) });
  const smaps = `/proc/${child.pid}/smaps`;
  const size = fs.readFileSync(smaps).length;
  const t = { read: [], readSync: [], regions: [], profit: [] };
  const c = { readSync: [], regions: [], profit: [] };
  for (let i = 0; i < RUNS + 2; i++) {
    // Interleaved, so load on this shared machine hits all alike.
    const readSync = await time(() => fs.readFileSync(smaps));
    const read = await time(() => fs.promises.readFile(smaps));
    const reg = await time(() => regions(child.pid));
    const est = await time(() => profit(child.pid, { exact: false }));
    const cpuRead = await cpu(() => fs.readFileSync(smaps));
    const cpuRegions = await cpu(() => regions(child.pid));
    const cpuProfit = await cpu(() => profit(child.pid, { exact: false }));
    if (i < 2) continue; // warm-up
    c.readSync.push(cpuRead);
    c.regions.push(cpuRegions);
    c.profit.push(cpuProfit);
    t.read.push(read);
    t.readSync.push(readSync);
    t.regions.push(reg);
    t.profit.push(est);
  }
  const vmas = (await regions(child.pid)).regions.length;
  // The kernel's own cost: a synchronous read loop, nothing else.
  const base = median(t.readSync);
  rows.push(
    { what: `read smaps (${vmas} VMAs, ${formatBytes(size)}), fs.readFileSync`, ms: base, ratio: 1 },
    { what: 'read smaps, fs.promises.readFile (a pool round trip per page)', ms: median(t.read), ratio: median(t.read) / base },
    { what: 'regions(pid)', ms: median(t.regions), ratio: median(t.regions) / base },
    { what: 'profit(pid, { exact: false })', ms: median(t.profit), ratio: median(t.profit) / base },
    { what: 'CPU time: read smaps, fs.readFileSync', ms: median(c.readSync), ratio: 1 },
    { what: 'CPU time: regions(pid)', ms: median(c.regions), ratio: median(c.regions) / median(c.readSync) },
    { what: 'CPU time: profit(pid, { exact: false })', ms: median(c.profit), ratio: median(c.profit) / median(c.readSync) },
  );
  child.send('exit');
}

// 2. Exact mode per GiB of merged memory: two processes with the same bytes.
const KSM = '/sys/kernel/mm/ksm';
if (process.getuid?.() === 0 && fs.existsSync(`${KSM}/run`) && fs.readFileSync(`${KSM}/run`, 'utf8').trim() === '1') {
  const bytes = Number(values.mib) * 1024 * 1024;
  const saved = fs.readFileSync(`${KSM}/pages_to_scan`, 'utf8').trim();
  const restore = () => { try { fs.writeFileSync(`${KSM}/pages_to_scan`, saved); } catch { /* advisor owns it */ } };
  process.once('SIGINT', () => { restore(); process.exit(130); });
  const children = [await start({ bytes, seed: 1 }), await start({ bytes, seed: 1 })];
  try {
    try { fs.writeFileSync(`${KSM}/pages_to_scan`, '5000'); } catch { /* scan-time advisor sets it */ }
    const deadline = Date.now() + 180_000;
    let merged = 0;
    while (Date.now() < deadline) {
      await waitForMerge({ fullScans: 1, timeoutMs: 180_000 });
      merged = (await profit(children[0].pid, { exact: false })).total.mergedBytes;
      if (merged >= bytes) break;
    }
    const exact = [];
    const estimated = [];
    for (let i = 0; i < Math.min(RUNS, 7) + 1; i++) {
      const e = await time(() => profit(children[0].pid, { exact: true }));
      const s = await time(() => profit(children[0].pid, { exact: false }));
      if (i === 0) continue;
      exact.push(e);
      estimated.push(s);
    }
    const perGiB = ((median(exact) - median(estimated)) / merged) * 1024 ** 3;
    rows.push(
      { what: `profit(pid, { exact: false }), ${formatBytes(merged)} merged`, ms: median(estimated), ratio: undefined },
      { what: `profit(pid, { exact: true }), ${formatBytes(merged)} merged`, ms: median(exact), ratio: undefined },
      { what: 'exact mode, extra cost per GiB merged', ms: perGiB, ratio: undefined },
    );
  } finally {
    restore();
    for (const child of children) child.send('exit');
  }
} else {
  rows.push({ what: 'exact mode: skipped (needs root and KSM running)', ms: undefined, ratio: undefined });
}

console.log(formatTable(rows, [
  { header: 'MEASURE', value: (row) => row.what },
  { header: 'MEDIAN ms', value: (row) => row.ms, format: (ms) => ms.toFixed(1) },
  { header: 'x READ', value: (row) => row.ratio, format: (r) => r.toFixed(2) },
]));
