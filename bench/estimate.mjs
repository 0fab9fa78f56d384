// estimate() benchmark, in one run:
//   speed    - pages hashed per second on one core, as a ratio to this
//              machine's sequential read bandwidth measured here, and to the
//              obvious JavaScript approach (a crypto hash per page);
//   threads  - threads=1 against threads=2 (all cores) side by side, and the
//              event loop's delay while an estimate runs;
//   whole machine - estimate({ all: true }) here: time, memory;
//   accuracy - 4 workers with a known layout are estimated, then merged by
//              KSM for real, and the prediction is compared with what merged
//              (pagemap + kpageflags, page by page; needs root and run=1).
// The in-place hash and the bandwidth baselines come from the bench's own
// addon (bench/native, built on first use by bench/lib/addon.mjs).
// Usage: npm run build && node bench/estimate.mjs [--mib 512] [--json] [--smoke] [--part speed,threads,whole,accuracy]
//   --smoke: 8 MiB, one round, no accuracy run: checks the script works.
import { fork, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Worker } from 'node:worker_threads';

import { BENCH_ADDON, benchAddon } from './lib/addon.mjs';

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
  const opts = { minRegionBytes: size / 2, threads: 1 };
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
  // The copy alone at each batch size, each paired with a read just before:
  // whether the wall is the kernel's copy itself or the batch we chose.
  const copyByBatch = {};
  for (const batch of smoke ? [64] : [16, 64, 256, 1024]) {
    const ofRead = [];
    for (let i = 0; i < (smoke ? 1 : 3); i++) {
      const read = readOnce();
      const v = bench.vmReadBandwidth(buffer, batch);
      ofRead.push(v.bytes / v.nanoseconds / read);
    }
    copyByBatch[batch] = median(ofRead);
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
    kernelCopy: { pagesPerSec: copyPagesPerSec, GBs: gbs(copyPagesPerSec), ofRead: ratio('copy', 'readCopy'), ofReadByBatch: copyByBatch },
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
  log(`  by pages per call: ${Object.entries(copyByBatch).map(([b, r]) => `${b}: ${(r * 100).toFixed(0)}%`).join(', ')} of read`);
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

const ORDERS = [['one', 'many', 'smapsFirst'], ['many', 'smapsFirst', 'one'], ['smapsFirst', 'one', 'many'], ['many', 'one', 'smapsFirst'], ['one', 'smapsFirst', 'many'], ['smapsFirst', 'many', 'one']];

// threads=1 against threads=2 (every core here), side by side in each
// round, on a child's memory (the process_vm_readv copy path every real
// estimate takes); and the event loop's delay during an estimate against
// an idle window of the same length.
async function threads() {
  const size = mib * 1024 * 1024;
  const pages = size / PAGE;
  const many = Math.max(2, Math.min(os.availableParallelism(), 256));
  const child = await startChild({ pages, sharedSeed: 1, zero: 0, volatile: 0, everyMs: 0 });
  const opts = { minRegionBytes: size / 2 };
  const rounds = smoke ? 1 : 12;
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const rows = [];
  let delay;
  let copy;
  let busy;
  try {
    for (let i = 0; i < rounds; i++) {
      // Each of the six orders of the three runs in turn, so that none always runs on a warm cache.
      const row = {};
      for (const n of ORDERS[i % ORDERS.length]) {
        if (n === 'smapsFirst') {
          // The same threads in the order before: smaps read first, then the pages.
          row.smapsFirstMs = (await smapsFirst(() => ksm.estimate(child.pid, { ...opts, threads: many }))).elapsedMs;
          continue;
        }
        const r = await ksm.estimate(child.pid, { ...opts, threads: n === 'one' ? 1 : many });
        const t = r.timings;
        row[n === 'one' ? 1 : many] = {
          sample: r.pagesHashed / (t.sampleMs / 1e3),
          whole: r.pagesHashed / (r.elapsedMs / 1e3),
          elapsedMs: r.elapsedMs,
          threads: r.threads,
          plannedFrom: r.plannedFrom,
          // Where the time goes: the native phases, and the rest (at threads=1 the smaps read and the
          // planning before them; at 2 or more the maps read before them, smaps being read beside them).
          pagemapMs: t.pagemapMs,
          sampleMs: t.sampleMs,
          confirmMs: t.confirmMs,
          otherMs: r.elapsedMs - t.pagemapMs - t.sampleMs - t.resampleMs - t.confirmMs,
          nativeMs: t.pagemapMs + t.sampleMs + t.resampleMs + t.confirmMs,
        };
      }
      // The part no thread count shortens: the kernel printing the child's
      // smaps (one walk of its page tables, on one thread), read raw.
      const s0 = performance.now();
      fs.readFileSync(`/proc/${child.pid}/smaps`);
      row.smapsMs = performance.now() - s0;
      rows.push(row);
    }
    delay = await loopDelay(child.pid, opts);
    busy = await busyTarget(many, smoke ? 1 : 24);
    copy = await copyOnThreads(many, smoke ? 8 : 256, smoke ? 1 : 3);
  } finally {
    child.kill();
  }
  const pick = (n, key) => median(rows.map((r) => r[n][key]));
  const result = {
    mib,
    rounds,
    threads: many,
    one: Object.fromEntries(['sample', 'whole', 'elapsedMs', 'pagemapMs', 'sampleMs', 'confirmMs', 'otherMs', 'nativeMs'].map((k) => [k === 'sample' ? 'samplePagesPerSec' : k === 'whole' ? 'wholePagesPerSec' : k, pick(1, k)])),
    many: Object.fromEntries(['sample', 'whole', 'elapsedMs', 'pagemapMs', 'sampleMs', 'confirmMs', 'otherMs', 'nativeMs'].map((k) => [k === 'sample' ? 'samplePagesPerSec' : k === 'whole' ? 'wholePagesPerSec' : k, pick(many, k)])),
    sampleRatio: median(rows.map((r) => r[many].sample / r[1].sample)),
    // The native phases (pagemap, sample, confirm): what the threads share.
    nativeRatio: median(rows.map((r) => r[1].nativeMs / r[many].nativeMs)),
    smapsMs: median(rows.map((r) => r.smapsMs)),
    // The whole call's ratio if the native phases scaled perfectly and the rest stayed as measured.
    wholeRatioBound: median(rows.map((r) => r[1].elapsedMs / (r[many].otherMs + r[1].nativeMs / many))),
    wholeRatio: median(rows.map((r) => r[many].whole / r[1].whole)),
    // The same threads with smaps read first (NODE_KSM_ESTIMATE_MAPS=0): what reading it beside the pages gains.
    smapsFirstMs: median(rows.map((r) => r.smapsFirstMs)),
    mapsFirstGain: median(rows.map((r) => r.smapsFirstMs / r[many].elapsedMs)),
    wholeRatioSmapsFirst: median(rows.map((r) => r[1].elapsedMs / r.smapsFirstMs)),
    busy,
    // How the threads=many runs were planned: kept from maps, or made again by smaps' plan.
    plannedFrom: Object.fromEntries(['smaps', 'maps', 'restarted'].map((k) => [k, rows.filter((r) => r[many].plannedFrom === k).length])),
    wholeRatioMin: Math.min(...rows.map((r) => r[many].whole / r[1].whole)),
    wholeRatioMax: Math.max(...rows.map((r) => r[many].whole / r[1].whole)),
    delay,
    copy,
  };
  log(`estimate(child, ${mib} MiB), threads 1 against ${many}, median of ${rounds} rounds side by side:`);
  log(`  threads=1:  sample ${(result.one.samplePagesPerSec / 1e6).toFixed(2)} M pages/s, whole call ${(result.one.wholePagesPerSec / 1e6).toFixed(2)} M pages/s (${result.one.elapsedMs.toFixed(0)} ms)`);
  log(`  threads=${many}:  sample ${(result.many.samplePagesPerSec / 1e6).toFixed(2)} M pages/s, whole call ${(result.many.wholePagesPerSec / 1e6).toFixed(2)} M pages/s (${result.many.elapsedMs.toFixed(0)} ms)`);
  for (const [label, f] of [['1', result.one], [String(many), result.many]]) {
    log(`  threads=${label} phases (median ms): pagemap ${f.pagemapMs.toFixed(1)}, sample ${f.sampleMs.toFixed(1)}, confirm ${f.confirmMs.toFixed(1)}, outside them ${f.otherMs.toFixed(1)}`);
  }
  log(`  threads=${many} planned from: ${Object.entries(result.plannedFrom).map(([k, n]) => `${k} ${n}`).join(', ')} (of ${rounds} rounds; smaps read beside the hashing when from maps)`);
  log(`  threads=${many} with smaps read first (NODE_KSM_ESTIMATE_MAPS=0): ${result.smapsFirstMs.toFixed(0)} ms, ${result.mapsFirstGain.toFixed(2)}x the maps-first call's time; against threads=1 ${result.wholeRatioSmapsFirst.toFixed(2)}x`);
  log(`  a busy child (${busy.what}), threads=${many}: maps first ${busy.mapsFirstMs.toFixed(0)} ms (planned from ${Object.entries(busy.plannedFrom).map(([k, n]) => `${k} ${n}`).join(', ')}), smaps first ${busy.smapsFirstMs.toFixed(0)} ms, threads=1 ${busy.oneMs.toFixed(0)} ms (medians of ${busy.rounds})`);
  log(`  ratio: sample ${result.sampleRatio.toFixed(2)}x, native phases ${result.nativeRatio.toFixed(2)}x, whole call ${result.wholeRatio.toFixed(2)}x (min ${result.wholeRatioMin.toFixed(2)}, max ${result.wholeRatioMax.toFixed(2)})`);
  log(`  the child's smaps read raw (fs.readFileSync, one kernel walk): ${result.smapsMs.toFixed(1)} ms; whole call if the native phases scaled perfectly: ${result.wholeRatioBound.toFixed(2)}x`);
  log(`  process_vm_readv copy alone on ${many} threads at once against one (each its own ${copy.mibEach} MiB, 64 pages a call): ${copy.ratio.toFixed(2)}x (${copy.ratios.map((r) => r.toFixed(2)).join(', ')})`);
  log(`event loop delay (monitorEventLoopDelay, 10 ms resolution), ${delay.estimateMs.toFixed(0)} ms estimate at threads=${many} against idle:`);
  log(`  during: p50 ${delay.during.p50.toFixed(2)} ms, p99 ${delay.during.p99.toFixed(2)} ms, max ${delay.during.max.toFixed(2)} ms; idle: p50 ${delay.idle.p50.toFixed(2)} ms, p99 ${delay.idle.p99.toFixed(2)} ms, max ${delay.idle.max.toFixed(2)} ms`);
  return result;
}

/** fn() with NODE_KSM_ESTIMATE_MAPS=0: estimate() reads smaps first at every thread count. */
async function smapsFirst(fn) {
  const saved = process.env.NODE_KSM_ESTIMATE_MAPS;
  process.env.NODE_KSM_ESTIMATE_MAPS = '0';
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.NODE_KSM_ESTIMATE_MAPS;
    else process.env.NODE_KSM_ESTIMATE_MAPS = saved;
  }
}

// A Node process whose layout changes all the time (V8's heap growing and
// shrinking as it allocates): two reads of its maps seldom agree, so it is
// read smaps first (and where they did agree, smaps' plan seldom does: the
// pages are read again). Its time with the head start allowed against
// smaps first and one thread, side by side in each round.
async function busyTarget(many, rounds) {
  const what = 'a Node process allocating 200,000 objects every 5 ms';
  const code = 'let keep = []; setInterval(() => { const a = []; for (let i = 0; i < 2e5; i++) a.push({ i, s: "x" + i }); keep.push(a); if (keep.length > 20) keep = []; }, 5)';
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit'] });
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000)); // its heap grown to its working size
    const ms = { one: [], many: [], smapsFirst: [] };
    const plannedFrom = { smaps: 0, maps: 0, restarted: 0 };
    for (let i = 0; i < rounds; i++) {
      for (const k of ORDERS[i % ORDERS.length]) {
        const run = () => ksm.estimate(child.pid, { threads: k === 'one' ? 1 : many });
        const r = k === 'smapsFirst' ? await smapsFirst(run) : await run();
        if (k === 'many') plannedFrom[r.plannedFrom]++;
        ms[k].push(r.elapsedMs);
      }
    }
    return { what, rounds, plannedFrom, mapsFirstMs: median(ms.many), smapsFirstMs: median(ms.smapsFirst), oneMs: median(ms.one), gain: median(ms.smapsFirst.map((x, i) => x / ms.many[i])) };
  } finally {
    child.kill('SIGKILL');
  }
}

// The copy alone (bench addon's vmReadBandwidth, no hash) on `many` worker
// threads started together against one thread: how far the kernel's copy
// itself scales over the cores, the ceiling of the sample phase's ratio.
async function copyOnThreads(many, mibEach, rounds) {
  const once = async (n) => {
    const flag = new SharedArrayBuffer(4);
    const workers = Array.from({ length: n }, () => new Worker(new URL('./workers/copy-thread.mjs', import.meta.url), {
      workerData: { addon: BENCH_ADDON, bytes: mibEach * 2 ** 20, batchPages: 64, flag },
    }));
    try {
      const results = workers.map((w) => new Promise((resolve, reject) => {
        w.on('error', reject);
        w.on('message', (m) => {
          if (!m.ready) resolve(m);
        });
      }));
      await Promise.all(workers.map((w) => new Promise((resolve) => w.once('message', resolve))));
      Atomics.store(new Int32Array(flag), 0, 1);
      Atomics.notify(new Int32Array(flag), 0);
      const done = await Promise.all(results);
      return done.reduce((sum, r) => sum + r.bytes / r.nanoseconds, 0);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
  };
  const ratios = [];
  for (let i = 0; i < rounds; i++) {
    const one = await once(1);
    ratios.push((await once(many)) / one);
  }
  const sorted = [...ratios].sort((a, b) => a - b);
  return { mibEach, ratio: sorted[Math.floor(sorted.length / 2)], ratios };
}

async function loopDelay(pid, opts) {
  const ms = (ns) => ns / 1e6;
  const summary = (h) => ({ p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean), count: h.count });
  // Timers keep the loop busy at 1 ms, as a server's loop would be.
  const tick = setInterval(() => {}, 1);
  try {
    const during = monitorEventLoopDelay({ resolution: 10 });
    during.enable();
    const t0 = performance.now();
    await ksm.estimate(pid, opts);
    const estimateMs = performance.now() - t0;
    during.disable();
    const idle = monitorEventLoopDelay({ resolution: 10 });
    idle.enable();
    await new Promise((resolve) => setTimeout(resolve, estimateMs));
    idle.disable();
    return { estimateMs, during: summary(during), idle: summary(idle) };
  } finally {
    clearInterval(tick);
  }
}

// estimate({ all: true }) on this machine as it is, in a fresh process:
// wall time, the estimator's own memory and the process's peak RSS (VmHWM).
async function wholeMachine() {
  if (smoke) return { skipped: 'not run in --smoke' };
  const script = `
    const ksm = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))});
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    ksm.estimate({ all: true }).then((r) => {
      const ms = performance.now() - t0;
      console.log(JSON.stringify({ ms, listed: r.all.listed, estimated: r.all.estimated, skipped: r.all.skippedCounts,
        pagesHashed: r.pagesHashed, memoryBytes: r.memoryBytes, threads: r.threads, predictedSavedBytes: r.predictedSavedBytes,
        rssBefore, maxRssBytes: hwm(), timings: r.timings }));
    });
    // VmHWM: this process's own peak. getrusage's maxRSS carries the peak
    // across execve, so a child forked from a large parent reports the parent's.
    function hwm() {
      const kb = /^VmHWM:\\s+(\\d+) kB/m.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'));
      return kb === null ? process.resourceUsage().maxRSS * 1024 : Number(kb[1]) * 1024;
    }`;
  const { execFileSync } = await import('node:child_process');
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', maxBuffer: 1 << 26 })));
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const result = { runs: runs.length, ms: median(runs.map((r) => r.ms)), msMin: Math.min(...runs.map((r) => r.ms)), msMax: Math.max(...runs.map((r) => r.ms)), maxRssBytes: median(runs.map((r) => r.maxRssBytes)), ...runs.at(-1), msAll: runs.map((r) => r.ms) };
  result.ms = median(runs.map((r) => r.ms));
  log(`estimate({ all: true }) on this machine, median of ${runs.length} fresh processes: ${result.ms.toFixed(0)} ms (${result.msMin.toFixed(0)}..${result.msMax.toFixed(0)}), ` +
    `${result.estimated} of ${result.listed} processes, ${result.pagesHashed} pages hashed on ${result.threads} threads, estimator memory ${(result.memoryBytes / 2 ** 20).toFixed(1)} MiB, peak RSS ${(result.maxRssBytes / 2 ** 20).toFixed(1)} MiB`);
  return result;
}

// --part speed,threads,whole,accuracy: only those parts (default: all).
const partArg = args.indexOf('--part') >= 0 ? args[args.indexOf('--part') + 1] ?? '' : 'speed,threads,whole,accuracy';
const parts = new Set(partArg.split(','));
const report = {
  speed: parts.has('speed') ? await speed() : undefined,
  threads: parts.has('threads') ? await threads() : undefined,
  wholeMachine: parts.has('whole') ? await wholeMachine() : undefined,
  accuracy: parts.has('accuracy') ? await accuracy() : undefined,
};
if (report.accuracy?.skipped) log(`accuracy: skipped, ${report.accuracy.skipped}`);
if (json) console.log(JSON.stringify(report, null, 2));
