// estimate() benchmark, in one run:
//   speed    - pages hashed per second on one core, as a ratio to this
//              machine's sequential read bandwidth measured here, and to the
//              obvious JavaScript approach (a crypto hash per page);
//   accuracy - 4 workers with a known layout are estimated, then merged by
//              KSM for real, and the prediction is compared with what merged
//              (pagemap + kpageflags, page by page; needs root and run=1).
// The in-place hash and the bandwidth baselines come from the bench's own
// addon (bench/native, built on first use by bench/lib/addon.mjs).
// Usage: npm run build && node bench/estimate.mjs [--mib 512] [--json] [--smoke]
//   --smoke: 8 MiB, one round, no accuracy run: checks the script works.
import { fork } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { benchAddon } from './lib/addon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const require = createRequire(import.meta.url);
const ksm = require(path.join(root, 'dist', 'index.js'));
const native = require('node-gyp-build')(root);
const bench = benchAddon();

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const mib = smoke ? 8 : Number(args[args.indexOf('--mib') + 1] ?? 512) || 512;
const json = args.includes('--json');
const PAGE = ksm.pageSize();
const log = (...line) => {
  if (!json) console.log(...line);
};
const best = (runs, fn) => {
  let top;
  for (let i = 0; i < runs; i++) {
    const value = fn();
    if (top === undefined || value > top) top = value;
  }
  return top;
};

// Memory of a realistic mix: 3/4 unique pages, 1/4 copies of other pages.
function fill(buffer) {
  randomFillSync(buffer);
  const pages = buffer.length / PAGE;
  for (let i = 0; i < pages; i += 4) buffer.copy(buffer, i * PAGE, ((i * 7919) % pages) * PAGE, ((i * 7919) % pages + 1) * PAGE);
}

async function speed() {
  const size = mib * 1024 * 1024;
  const pages = size / PAGE;
  const buffer = native.alloc(size, [native.constants.MADV_NOHUGEPAGE]);
  fill(buffer);

  // The machine may be shared: each measurement is paired with a read
  // bandwidth measured just before it, and the median ratio is reported.
  const rounds = smoke ? 1 : 5;
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const readOnce = () => {
    const r = bench.readBandwidth(buffer, 2);
    return r.bytes / r.nanoseconds;
  };
  readOnce();
  const child = await startChild({ pages, sharedSeed: 1, zero: 0, volatile: 0, everyMs: 0 });
  // Only the big VMA counts (minRegionBytes): this process's buffer, the child's.
  const opts = { minRegionBytes: size / 2 };
  const rows = [];
  let selfResult;
  try {
    for (let i = 0; i < rounds; i++) {
      const row = {};
      row.read = readOnce();
      const h = bench.hashPages(buffer);
      row.inPlace = (h.pages / h.nanoseconds) * 1e9;
      row.implementation = h.implementation;
      const v = bench.vmReadBandwidth(buffer, 64);
      row.copy = (v.bytes / v.nanoseconds / PAGE) * 1e9;
      row.readCopy = readOnce();
      row.readSelf = readOnce();
      selfResult = await ksm.estimate('self', opts);
      row.self = selfResult.pagesHashed / (selfResult.timings.sampleMs / 1e3);
      row.selfWhole = selfResult.pagesHashed / (selfResult.elapsedMs / 1e3);
      row.readChild = readOnce();
      const c = await ksm.estimate(child.pid, opts);
      row.child = c.pagesHashed / (c.timings.sampleMs / 1e3);
      row.childWhole = c.pagesHashed / (c.elapsedMs / 1e3);
      // Last in the round, so that the figures above are taken as before.
      row.readScalar = readOnce();
      const s = bench.hashPages(buffer, 'scalar');
      row.inPlaceScalar = (s.pages / s.nanoseconds) * 1e9;
      rows.push(row);
    }
  } finally {
    child.kill();
  }
  const readGBs = median(rows.map((r) => r.read));
  const inPlacePagesPerSec = median(rows.map((r) => r.inPlace));
  const scalarPagesPerSec = median(rows.map((r) => r.inPlaceScalar));
  const copyPagesPerSec = median(rows.map((r) => r.copy));
  const selfSample = median(rows.map((r) => r.self));
  const selfWhole = median(rows.map((r) => r.selfWhole));
  const childSample = median(rows.map((r) => r.child));
  const childWhole = median(rows.map((r) => r.childWhole));
  const ratio = (key, readKey) => median(rows.map((r) => (r[key] * PAGE) / 1e9 / r[readKey]));

  // The obvious JavaScript approach: a crypto hash per page into a Map.
  const jsPages = Math.min(pages, 32768);
  const js = {};
  for (const algorithm of ['sha1', 'md5']) {
    js[algorithm] = best(2, () => {
      const seen = new Map();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < jsPages; i++) {
        const key = createHash(algorithm).update(buffer.subarray(i * PAGE, (i + 1) * PAGE)).digest('base64');
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      return (jsPages / Number(process.hrtime.bigint() - t0)) * 1e9;
    });
  }
  const jsBest = Math.max(...Object.values(js));
  const gbs = (pagesPerSec) => (pagesPerSec * PAGE) / 1e9;
  const result = {
    mib,
    rounds,
    readGBs,
    hashInPlace: { implementation: rows[0].implementation, pagesPerSec: inPlacePagesPerSec, GBs: gbs(inPlacePagesPerSec), ofRead: ratio('inPlace', 'read') },
    // The portable hash on the same memory (what a CPU without AVX2 runs).
    hashInPlaceScalar: { pagesPerSec: scalarPagesPerSec, GBs: gbs(scalarPagesPerSec), ofRead: ratio('inPlaceScalar', 'readScalar'), ofBest: scalarPagesPerSec / inPlacePagesPerSec },
    // process_vm_readv alone (64 pages a call, no hashing): the kernel's copy path.
    kernelCopy: { pagesPerSec: copyPagesPerSec, GBs: gbs(copyPagesPerSec), ofRead: ratio('copy', 'readCopy') },
    estimateSelf: {
      samplePagesPerSec: selfSample,
      GBs: gbs(selfSample),
      ofRead: ratio('self', 'readSelf'),
      wholePagesPerSec: selfWhole,
      vsJs: selfSample / jsBest,
      ofKernelCopy: selfSample / copyPagesPerSec,
      memoryBytesPerPage: selfResult.memoryBytes / selfResult.pagesHashed,
      memoryBytes: selfResult.memoryBytes,
      pagesHashed: selfResult.pagesHashed,
    },
    estimateChild: {
      samplePagesPerSec: childSample,
      GBs: gbs(childSample),
      ofRead: ratio('child', 'readChild'),
      wholePagesPerSec: childWhole,
      vsJs: childSample / jsBest,
    },
    js: Object.fromEntries(Object.entries(js).map(([k, v]) => [k, { pagesPerSec: v, GBs: gbs(v) }])),
    processVmReadvCostOnSelf: 1 - selfSample / inPlacePagesPerSec,
  };
  log(`median of ${rounds} rounds, each ratio against the read bandwidth measured just before it`);
  log(`sequential read, one core:         ${readGBs.toFixed(2)} GB/s (min ${Math.min(...rows.map((r) => r.read)).toFixed(2)}, max ${Math.max(...rows.map((r) => r.read)).toFixed(2)})`);
  log(`page hash in place (no copy):      ${(inPlacePagesPerSec / 1e6).toFixed(2)} M pages/s = ${result.hashInPlace.GBs.toFixed(2)} GB/s = ${(result.hashInPlace.ofRead * 100).toFixed(0)}% of read`);
  log(`scalar page hash in place:         ${(scalarPagesPerSec / 1e6).toFixed(2)} M pages/s = ${result.hashInPlaceScalar.GBs.toFixed(2)} GB/s = ${(result.hashInPlaceScalar.ofRead * 100).toFixed(0)}% of read (${result.hashInPlace.implementation} is ${(1 / result.hashInPlaceScalar.ofBest).toFixed(2)}x it)`);
  log(`process_vm_readv copy alone:      ${(copyPagesPerSec / 1e6).toFixed(2)} M pages/s = ${result.kernelCopy.GBs.toFixed(2)} GB/s = ${(result.kernelCopy.ofRead * 100).toFixed(0)}% of read`);
  log(`estimate('self') sample phase:     ${(selfSample / 1e6).toFixed(2)} M pages/s = ${result.estimateSelf.GBs.toFixed(2)} GB/s = ${(result.estimateSelf.ofRead * 100).toFixed(0)}% of read (whole call ${(selfWhole / 1e6).toFixed(2)} M pages/s)`);
  log(`estimate(child) sample phase:      ${(childSample / 1e6).toFixed(2)} M pages/s = ${result.estimateChild.GBs.toFixed(2)} GB/s = ${(result.estimateChild.ofRead * 100).toFixed(0)}% of read (whole call ${(childWhole / 1e6).toFixed(2)} M pages/s)`);
  for (const [k, v] of Object.entries(result.js)) log(`JavaScript crypto ${k} per page:     ${(v.pagesPerSec / 1e6).toFixed(3)} M pages/s = ${v.GBs.toFixed(2)} GB/s`);
  log(`estimate vs JavaScript:            ${result.estimateSelf.vsJs.toFixed(1)}x (self), ${result.estimateChild.vsJs.toFixed(1)}x (child)`);
  log(`estimate('self') vs copy alone:    ${(result.estimateSelf.ofKernelCopy * 100).toFixed(0)}% (hashing on top of the kernel copy)`);
  log(`process_vm_readv on self costs:    ${(result.processVmReadvCostOnSelf * 100).toFixed(0)}% of the in-place rate`);
  log(`estimator memory:                  ${(result.estimateSelf.memoryBytes / 2 ** 20).toFixed(2)} MiB for ${result.estimateSelf.pagesHashed} pages = ${result.estimateSelf.memoryBytesPerPage.toFixed(1)} bytes per page hashed (16 per page + fixed buffers)`);
  return result;
}

function startChild(spec) {
  const child = fork(path.join(here, 'estimate.child.cjs'), [JSON.stringify(spec)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (ready) => resolve({ ...ready, child, kill: () => child.kill('SIGKILL'), send: (m) => new Promise((r) => { child.once('message', r); child.send(m); }) }));
    child.once('exit', (code) => reject(new Error(`bench child exited early (${code})`)));
  });
}

const KPF_KSM = 1n << 21n;
const KPF_ZERO_PAGE = 1n << 24n;
function merged(ranges) {
  let mappers = 0;
  let zero = 0;
  const pfns = new Set();
  const flagsFd = fs.openSync('/proc/kpageflags', 'r');
  const one = Buffer.alloc(8);
  for (const { pid, start, end } of ranges) {
    const count = Number((end - start) / BigInt(PAGE));
    const map = Buffer.alloc(count * 8);
    const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
    fs.readSync(fd, map, 0, map.length, Number((start / BigInt(PAGE)) * 8n));
    fs.closeSync(fd);
    for (let i = 0; i < count; i++) {
      const entry = map.readBigUInt64LE(i * 8);
      if ((entry >> 63n) === 0n) continue;
      const pfn = entry & ((1n << 55n) - 1n);
      fs.readSync(flagsFd, one, 0, 8, Number(pfn * 8n));
      const flags = one.readBigUInt64LE(0);
      if (flags & KPF_KSM) {
        mappers++;
        pfns.add(pfn);
      } else if (flags & KPF_ZERO_PAGE) zero++;
    }
  }
  fs.closeSync(flagsFd);
  return mappers - pfns.size + zero;
}

async function accuracy() {
  if (smoke) return { skipped: 'not run in --smoke' };
  const stat = ksm.systemStat();
  if (process.getuid?.() !== 0) return { skipped: 'needs root (kpageflags)' };
  if (stat.run !== 1) return { skipped: 'KSM is not running (echo 1 > /sys/kernel/mm/ksm/run)' };
  const pages = 4096;
  const spec = { pages, sharedSeed: Math.floor(Math.random() * 1e9), zero: 410, volatile: 410, everyMs: 100 };
  const workers = await Promise.all(Array.from({ length: 4 }, () => startChild(spec)));
  try {
    const t0 = performance.now();
    const result = await ksm.estimate(workers.map((w) => w.pid), { intervalMs: 400 });
    const estimateMs = performance.now() - t0;
    let candidates = 0;
    let predicted = 0;
    for (const w of workers) {
      const vma = result.processes.find((p) => p.pid === w.pid).vmas.find((v) => v.start === w.start);
      candidates += vma.candidatePages;
      predicted += vma.predictedSavedPages;
    }
    await Promise.all(workers.map((w) => w.send({ cmd: 'enableMerge' })));
    try {
      await ksm.waitForMerge({ fullScans: 3, timeoutMs: 300_000 });
    } catch (error) {
      // KSM is one machine-wide resource: someone may stop it meanwhile.
      return { skipped: `waiting for the merge failed: ${error.message}` };
    }
    const actual = merged(workers.map((w) => ({ pid: w.pid, start: w.start, end: w.end })));
    const errorOfCandidates = Math.abs(predicted - actual) / candidates;
    const out = { candidates, predictedSavedPages: predicted, mergedSavedPages: actual, errorOfCandidates, useZeroPages: result.useZeroPages, estimateMs };
    log(`accuracy (4 workers x ${pages} pages: 50% shared, 10% zero, 10% volatile @100ms, use_zero_pages ${result.useZeroPages}):`);
    log(`  predicted ${predicted.toFixed(1)} pages saved, KSM merged ${actual}: error ${(errorOfCandidates * 100).toFixed(3)}% of ${candidates} candidate pages (target <= 2%)`);
    return out;
  } finally {
    for (const w of workers) w.kill();
  }
}

const report = { speed: await speed(), accuracy: await accuracy() };
if (report.accuracy.skipped) log(`accuracy: skipped, ${report.accuracy.skipped}`);
if (json) console.log(JSON.stringify(report, null, 2));
