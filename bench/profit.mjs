// profit()/regions() cost against the kernel's own cost of producing smaps
// (and of the other files profit reads), measured in one run, interleaved;
// exact mode's cost per GiB merged and against the same pagemap, kpageflags
// and kpagecount reads made raw.
//
//   node bench/profit.mjs [--vmas 10000] [--mib 256] [--runs 15] [--spread 0] [--budget-s 15]
//
// --runs rounds of every row at least; past them, rounds of the timed rows
// alone (wall times and phases, no CPU rows) go on for --budget-s more: at a
// few hundred VMAs a call takes 2-3 ms, and 15 medians moved by up to 0.3x
// between runs of the same code, where a few hundred rounds hold still.
// Exact mode likewise (7 rounds at least).
//
// Needs a built package (npm run build). The exact part needs root and
// running KSM; it sets pages_to_scan to 5000 for the merge and puts it back,
// and pauses ksmd for the timed calls. --spread N adds exact mode on pages
// merged across N VMAs of 4 pages each.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { profit, regions, formatBytes, formatTable, pageSize, waitForMerge } from '../dist/index.mjs';
import { ksmAvailability, readKnob, withKnobs } from './lib/knobs.mjs';

const requireHere = createRequire(import.meta.url);

// The addon itself, for exact mode's page reads alone (native/attribution.cc).
const addon = requireHere('node-gyp-build')(fileURLToPath(new URL('..', import.meta.url)));

// The package's own off-event-loop read (the addon's reader thread, bytes
// only): the addon delivers every read of this environment to one function,
// so the bench goes through the package's, not a second one of its own.
const { startRead, startHeaderRead, startSmapsRead } = requireHere('../dist/kernel/files.js');
// Which VMAs regions() reads a malloc chunk header of (vma-evidence.ts reads at most 4,096).
const { mallocChunkCandidate } = requireHere('../dist/kernel/vma.js');
const MAX_CHUNK_VMAS = 4096;
// The scan regions() and profit() take, and what they ask read beside it.
const { NATIVE_SMAPS_FIELDS } = requireHere('../dist/kernel/smaps-native.js');
const { layoutScanReads } = requireHere('../dist/kernel/vma-evidence.js');
const { resolveTarget } = requireHere('../dist/kernel/target.js');
// The package's files module itself, so that phases() can wrap the very
// startSmapsRead() its readers call.
const filesModule = requireHere('../dist/kernel/files.js');

const { values } = parseArgs({
  options: {
    vmas: { type: 'string', default: '10000' },
    mib: { type: 'string', default: '256' },
    runs: { type: 'string', default: '15' },
    spread: { type: 'string', default: '0' },
    'budget-s': { type: 'string', default: '15' },
  },
});
const RUNS = Number(values.runs);
const BUDGET_MS = Number(values['budget-s']) * 1000;
if (!(BUDGET_MS >= 0)) throw new RangeError(`--budget-s must be a number of seconds, 0 or more (got ${values['budget-s']})`);
// A bound on the rounds however fast they are (a 100-VMA part: ~40 ms a round).
const MAX_ROUNDS = 400;
/** Whether round `i` is to be made: the first `least` always, then more for BUDGET_MS from the end of those (MAX_ROUNDS in all at most). */
function roundsWithin(least) {
  let extraFrom;
  return (i) => {
    if (i < least) return true;
    extraFrom ??= performance.now();
    return i < MAX_ROUNDS && performance.now() - extraFrom < BUDGET_MS;
  };
}
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

// CPU time of the calling (JavaScript) thread alone: what the event loop
// gives up per call, the reader threads' share left out. Its schedstat's
// first field (ns on a CPU, brought up to date at each sleep: the calls
// await, the readFileSync block is one call's worth either side), over a
// block of `calls`.
const THREAD_SCHEDSTAT = '/proc/thread-self/schedstat';
const threadCpuNs = () => Number(fs.readFileSync(THREAD_SCHEDSTAT, 'latin1').split(' ')[0]);
async function threadCpu(fn, calls = 10) {
  const t0 = threadCpuNs();
  for (let i = 0; i < calls; i++) await fn();
  return (threadCpuNs() - t0) / 1e6 / calls;
}

/**
 * Where one call's time goes: before its smaps read starts (options, what
 * is read beside it asked for; the status read that resolves the target
 * comes after the start), the read with what is read
 * beside it (until the addon delivers the scan) and after it (the rows made
 * of the scan, the kinds, the labels). The package's startSmapsRead() is
 * wrapped for this call only; the wrapper's own cost is two performance.now().
 */
async function phases(fn) {
  const original = filesModule.startSmapsRead;
  let started;
  let delivered;
  filesModule.startSmapsRead = (...args) => {
    started = performance.now();
    const pending = original(...args);
    // Registered before the reader awaits it: runs first when the scan comes.
    pending.promise.then(() => { delivered = performance.now(); }, () => {});
    return pending;
  };
  try {
    const t0 = performance.now();
    await fn();
    const t3 = performance.now();
    return { before: started - t0, read: delivered - started, after: t3 - delivered };
  } finally {
    filesModule.startSmapsRead = original;
  }
}

const rows = [];

/**
 * Every read regions(pid) makes, one after another: smaps raw, each
 * thread's syscall file (the stack pointers), and the addon's read of the
 * first chunk header of each candidate VMA (the same job regions() starts).
 */
async function regionsReadsRaw(pid, headerAddresses) {
  fs.readFileSync(`/proc/${pid}/smaps`);
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try { fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`); } catch { /* exited meanwhile */ }
  }
  await startHeaderRead(`/proc/${pid}`, headerAddresses).promise;
}

/** The files profit(pid) reads, raw and one after another; with `rollup`, smaps_rollup too (it walks the page tables again). */
function profitFilesRaw(pid, rollup = false) {
  fs.readFileSync(`/proc/${pid}/smaps`);
  if (rollup) fs.readFileSync(`/proc/${pid}/smaps_rollup`);
  fs.readFileSync(`/proc/${pid}/ksm_stat`);
}

// The addon's windows over kpageflags/kpagecount (native/attribution.cc).
const WINDOW = 4096;
const MAX_GAP = 8;

/** The low and high 32 bits of sorted `pfns`' 8-byte entries in a kpage* file, read in the addon's gap-limited windows. */
function readFrames(fd, pfns, visit) {
  const buffer = Buffer.alloc(WINDOW * 8);
  const words = new Uint32Array(buffer.buffer, buffer.byteOffset, WINDOW * 2);
  for (let i = 0; i < pfns.length; ) {
    const first = pfns[i];
    let j = i;
    while (j + 1 < pfns.length && pfns[j + 1] - pfns[j] <= MAX_GAP && pfns[j + 1] - first < WINDOW) j++;
    const bytes = fs.readSync(fd, buffer, 0, (pfns[j] - first + 1) * 8, first * 8);
    for (let k = i; k <= j; k++) {
      const at = pfns[k] - first;
      if (at * 8 + 8 <= bytes) visit(pfns[k], words[2 * at], words[2 * at + 1]);
      else visit(pfns[k], 0, 0);
    }
    i = j + 1;
  }
}

/**
 * What exact mode reads, raw, in JavaScript: pagemap of the VMAs it walks
 * (linearly, 64 KiB a pread), kpageflags of their present frames, kpagecount
 * of the KSM ones. `ranges` are [start, end) page numbers.
 */
function exactReadsRaw(pid, ranges) {
  const pagemap = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  const flags = fs.openSync('/proc/kpageflags', 'r');
  const counts = fs.openSync('/proc/kpagecount', 'r');
  try {
    const pfns = [];
    const chunk = Buffer.alloc(65536);
    const words = new Uint32Array(chunk.buffer, chunk.byteOffset, chunk.length / 4);
    for (const [start, end] of ranges) {
      for (let page = start; page < end; ) {
        const pages = Math.min(end - page, chunk.length / 8);
        const bytes = fs.readSync(pagemap, chunk, 0, pages * 8, page * 8);
        for (let e = 0; e < bytes / 8; e++) {
          const high = words[2 * e + 1];
          // Bit 63 present; bits 0-54 the frame number.
          if (high >>> 31) pfns.push((high & 0x7fffff) * 2 ** 32 + words[2 * e]);
        }
        page += pages;
      }
    }
    pfns.sort((a, b) => a - b);
    const ksm = [];
    readFrames(flags, pfns, (pfn, low) => { if ((low >>> 21) & 1) ksm.push(pfn); }); // KPF_KSM
    let mappings = 0;
    readFrames(counts, ksm, (pfn, low, high) => { mappings += high * 2 ** 32 + low; });
    return { present: pfns.length, ksm: ksm.length, mappings };
  } finally {
    for (const fd of [pagemap, flags, counts]) fs.closeSync(fd);
  }
}

// 1. Parse overhead on a process with many VMAs. ksmd is paused meanwhile
// where it runs (run=0 keeps what it merged): at the bench's baseline
// (5,000 pages every 10 ms) it scans this child's 5,000 mergeable VMAs on
// and on, 42% of a core measured, and a report that reads on two threads
// would be timed against a read on one with the second core half taken.
const ksmdRan = ksmAvailability().available && readKnob('run') === '1';
await (ksmdRan ? (fn) => withKnobs({ run: '0' }, fn) : (fn) => fn())(async () => {
  const child = await start({ vmas: Number(values.vmas) });
  const smaps = `/proc/${child.pid}/smaps`;
  const size = fs.readFileSync(smaps).length;
  const candidates = (await regions(child.pid, { layoutReads: false })).regions.filter(mallocChunkCandidate).slice(0, MAX_CHUNK_VMAS);
  const headerAddresses = BigUint64Array.from(candidates, (vma) => vma.start);
  const t = { read: [], readSync: [], readAll: [], readAllRollup: [], readThread: [], scan: [], scanBeside: [], scanBesideProfit: [], scanStat: [], regions: [], profit: [], regionsBare: [], profitBare: [], profitRollup: [], regionsReads: [] };
  const c = { readSync: [], regions: [], profit: [] };
  // regions(), regions() without the layout's reads and profit() are timed
  // through phases(): their rows and where their time goes come of the same calls.
  const p = { regions: { before: [], read: [], after: [] }, regionsBare: { before: [], read: [], after: [] }, profit: { before: [], read: [], after: [] } };
  const split = {};
  const phased = (name, fn) => async () => {
    split[name] = await phases(fn);
  };
  const besideRegions = layoutScanReads(resolveTarget(child.pid, undefined), 'candidates');
  // profit(pid)'s: the chunk headers of the VMAs it reports (and the stack pointers), ksm_stat read beside.
  const besideProfit = layoutScanReads(resolveTarget(child.pid, undefined), 'reported');
  const ksmStat = `/proc/${child.pid}/ksm_stat`;
  const j = { readSync: [], regions: [], regionsBare: [], profit: [] };
  // Interleaved, so load on this shared machine hits all alike, and in an
  // order turned by one each round: a call pays for the garbage of the one
  // before it (10,000 regions are 10,000 objects), so each follows each.
  const timed = {
    readSync: () => fs.readFileSync(smaps),
    readAll: () => profitFilesRaw(child.pid),
    readAllRollup: () => profitFilesRaw(child.pid, true),
    readThread: () => startRead(smaps).promise,
    scan: () => startSmapsRead(smaps, NATIVE_SMAPS_FIELDS).promise,
    scanBeside: () => startSmapsRead(smaps, NATIVE_SMAPS_FIELDS, besideRegions).promise,
    // The floors under profit(pid) and profit(pid, { layoutReads: false }): the addon's reads alone, no JavaScript after them.
    scanBesideProfit: () => Promise.all([startRead(ksmStat).promise, startSmapsRead(smaps, NATIVE_SMAPS_FIELDS, besideProfit).promise]),
    scanStat: () => Promise.all([startRead(ksmStat).promise, startSmapsRead(smaps, NATIVE_SMAPS_FIELDS).promise]),
    regionsReads: () => regionsReadsRaw(child.pid, headerAddresses),
    regions: phased('regions', () => regions(child.pid)),
    profit: phased('profit', () => profit(child.pid, { exact: false })),
    // Without the reads Node's kinds need (thread stacks, malloc chunk headers): the /proc reads alone.
    regionsBare: phased('regionsBare', () => regions(child.pid, { layoutReads: false })),
    profitBare: () => profit(child.pid, { exact: false, layoutReads: false }),
    profitRollup: () => profit(child.pid, { exact: false, layoutReads: false, rollup: true }),
  };
  const names = Object.keys(timed);
  const more = roundsWithin(RUNS + 2);
  let rounds = 0;
  for (let i = 0; more(i); i++) {
    const round = {};
    for (let k = 0; k < names.length; k++) {
      const name = names[(i + k) % names.length];
      round[name] = await time(timed[name]);
    }
    if (i >= RUNS + 2) {
      // Past --runs: the timed rows and their phases only.
      for (const name of Object.keys(p)) for (const phase of Object.keys(p[name])) p[name][phase].push(split[name][phase]);
      for (const name of names) t[name].push(round[name]);
      rounds++;
      continue;
    }
    const cpuRead = await cpu(() => fs.readFileSync(smaps));
    const cpuRegions = await cpu(() => regions(child.pid));
    const cpuProfit = await cpu(() => profit(child.pid, { exact: false }));
    const jsThread = {
      readSync: await threadCpu(() => fs.readFileSync(smaps)),
      regions: await threadCpu(() => regions(child.pid)),
      regionsBare: await threadCpu(() => regions(child.pid, { layoutReads: false })),
      profit: await threadCpu(() => profit(child.pid, { exact: false })),
    };
    // Last: its page-sized reads leave the most garbage, which the next call measured would pay for.
    const read = await time(() => fs.promises.readFile(smaps));
    if (i < 2) continue; // warm-up
    c.readSync.push(cpuRead);
    c.regions.push(cpuRegions);
    c.profit.push(cpuProfit);
    for (const name of Object.keys(j)) j[name].push(jsThread[name]);
    for (const name of Object.keys(p)) for (const phase of Object.keys(p[name])) p[name][phase].push(split[name][phase]);
    t.read.push(read);
    for (const name of names) t[name].push(round[name]);
    rounds++;
  }
  const vmas = (await regions(child.pid)).regions.length;
  // The kernel's own cost: a synchronous read loop, nothing else.
  const base = median(t.readSync);
  rows.push(
    { what: `read smaps (${vmas} VMAs, ${formatBytes(size)}), fs.readFileSync`, ms: base, ratio: 1 },
    { what: 'read smaps, fs.promises.readFile (a pool round trip per page)', ms: median(t.read), ratio: median(t.read) / base },
    { what: "read smaps on the addon's reader thread, bytes only (the floor off the event loop)", ms: median(t.readThread), ratio: median(t.readThread) / base },
    { what: "read smaps scanned by the addon (the scan regions() and profit() take, nothing read beside it)", ms: median(t.scan), ratio: median(t.scan) / base },
    {
      what: `the same scan with what regions(pid) reads beside it (${['chunks', 'stackPointers'].filter((k) => besideRegions?.[k]).join(', ') || 'nothing'})`,
      ms: median(t.scanBeside),
      ratio: median(t.scanBeside) / base,
    },
    {
      what: `the same scan with what profit(pid) reads beside it (${['chunks', 'stackPointers'].filter((k) => besideProfit?.[k]).join(', ') || 'nothing'}; ksm_stat)`,
      ms: median(t.scanBesideProfit),
      ratio: median(t.scanBesideProfit) / base,
    },
    { what: 'the same scan with ksm_stat read beside it (what profit(pid, { layoutReads: false }) reads)', ms: median(t.scanStat), ratio: median(t.scanStat) / base },
    { what: 'read smaps + ksm_stat (what profit reads), fs.readFileSync', ms: median(t.readAll), ratio: median(t.readAll) / base },
    { what: 'read smaps + smaps_rollup + ksm_stat (what profit reads with rollup: true), fs.readFileSync', ms: median(t.readAllRollup), ratio: median(t.readAllRollup) / base },
    {
      what: `every read regions(pid) makes: smaps (fs.readFileSync) + the threads' syscall files + the addon's header read (${candidates.length} headers), one after another`,
      ms: median(t.regionsReads),
      ratio: median(t.regionsReads) / base,
    },
    { what: 'regions(pid)', ms: median(t.regions), ratio: median(t.regions) / base },
    { what: 'regions(pid) / every read it makes', ms: undefined, ratio: median(t.regions) / median(t.regionsReads) },
    { what: 'profit(pid, { exact: false })', ms: median(t.profit), ratio: median(t.profit) / base },
    { what: 'regions(pid, { layoutReads: false })', ms: median(t.regionsBare), ratio: median(t.regionsBare) / base },
    { what: 'profit(pid, { exact: false, layoutReads: false })', ms: median(t.profitBare), ratio: median(t.profitBare) / base },
    { what: 'profit(pid, { exact: false, layoutReads: false, rollup: true })', ms: median(t.profitRollup), ratio: median(t.profitRollup) / base },
    // Above the addon's own reads (made as the call makes them, nothing done with their results): what the JavaScript adds.
    { what: 'regions(pid) / its reads made by the addon alone', ms: undefined, ratio: median(t.regions) / median(t.scanBeside) },
    { what: 'regions(pid, { layoutReads: false }) / its reads made by the addon alone', ms: undefined, ratio: median(t.regionsBare) / median(t.scan) },
    { what: 'profit(pid, { exact: false }) / its reads made by the addon alone', ms: undefined, ratio: median(t.profit) / median(t.scanBesideProfit) },
    { what: 'profit(pid, { exact: false, layoutReads: false }) / its reads made by the addon alone', ms: undefined, ratio: median(t.profitBare) / median(t.scanStat) },
    { what: 'CPU time: read smaps, fs.readFileSync', ms: median(c.readSync), ratio: 1 },
    { what: 'CPU time: regions(pid)', ms: median(c.regions), ratio: median(c.regions) / median(c.readSync) },
    { what: 'CPU time: profit(pid, { exact: false })', ms: median(c.profit), ratio: median(c.profit) / median(c.readSync) },
    { what: "the JavaScript thread's CPU: read smaps, fs.readFileSync", ms: median(j.readSync), ratio: 1 },
    { what: "the JavaScript thread's CPU: regions(pid)", ms: median(j.regions), ratio: median(j.regions) / median(j.readSync) },
    { what: "the JavaScript thread's CPU: regions(pid, { layoutReads: false })", ms: median(j.regionsBare), ratio: median(j.regionsBare) / median(j.readSync) },
    { what: "the JavaScript thread's CPU: profit(pid, { exact: false })", ms: median(j.profit), ratio: median(j.profit) / median(j.readSync) },
    ...Object.entries({ regions: 'regions(pid)', regionsBare: 'regions(pid, { layoutReads: false })', profit: 'profit(pid, { exact: false })' }).flatMap(([name, call]) => [
      { what: `where ${call}'s time goes: before its smaps read starts`, ms: median(p[name].before), ratio: median(p[name].before) / base },
      { what: `where ${call}'s time goes: its smaps read, with what it reads beside, to the scan's delivery`, ms: median(p[name].read), ratio: median(p[name].read) / base },
      { what: `where ${call}'s time goes: after the scan came (rows, kinds, labels)`, ms: median(p[name].after), ratio: median(p[name].after) / base },
    ]),
    { what: `rounds: ${rounds} of the timed rows (interleaved), ${RUNS} of the CPU rows and fs.promises.readFile`, ms: undefined, ratio: undefined },
    { what: `ksmd during the rows above: ${ksmdRan ? 'paused (run=0), put back after' : 'not running'}`, ms: undefined, ratio: undefined },
  );
  child.send('exit');
});

// 2. Exact mode: two processes with the same pages, merged; the timed calls
// with ksmd paused (run=0 keeps what it merged: a two-thread read timed
// against one-thread reads with ksmd on the second core otherwise).
// `prefix` starts each row's name; `spec` is the children's (profit.child.cjs).
async function exactMode(spec, expectedBytes, prefix) {
  const children = [await start(spec), await start(spec)];
  try {
    const pid = children[0].pid;
    await withKnobs({ pages_to_scan: '5000' }, async () => {
      const deadline = Date.now() + 180_000;
      while (Date.now() < deadline) {
        await waitForMerge({ fullScans: 1, timeoutMs: 180_000 });
        if ((await profit(pid, { exact: false })).total.mergedBytes >= expectedBytes) break;
      }
    });
    return await withKnobs({ run: '0' }, async () => {
      const merged = (await profit(pid, { exact: false })).total.mergedBytes;
      // The VMAs exact mode walks: those smaps says hold KSM pages (and every
      // mergeable one when the process has zero pages), lib/report/profit/method.ts.
      const stat = fs.readFileSync(`/proc/${pid}/ksm_stat`, 'utf8');
      const zeroPages = Number(/ksm_zero_pages (\d+)/.exec(stat)?.[1] ?? 0);
      const page = BigInt(pageSize());
      const walkedRegions = (await regions(pid)).regions
        .filter((r) => (r.ksm ?? 0) > 0 || (zeroPages > 0 && r.mergeable) || r.ksm === undefined);
      const walked = walkedRegions.map((r) => [Number(r.start / page), Number(r.end / page)]);
      const starts = BigUint64Array.from(walkedRegions, (r) => r.start);
      const ends = BigUint64Array.from(walkedRegions, (r) => r.end);
      const smaps = `/proc/${pid}/smaps`;
      const layoutBeside = layoutScanReads(resolveTarget(pid, undefined), 'reported');
      const t = { exact: [], estimated: [], reads: [], raw: [], allReads: [], asMade: [] };
      let frames;
      const timed = {
        exact: () => profit(pid, { exact: true }),
        estimated: () => profit(pid, { exact: false }),
        reads: () => addon.pageAttribution(pid, starts, ends),
        raw: () => { frames = exactReadsRaw(pid, walked); },
        allReads: async () => {
          profitFilesRaw(pid);
          await addon.pageAttribution(pid, starts, ends);
        },
        // As profit() makes them: the page reads of each VMA with KSM pages
        // on the reader's helper thread as soon as smaps has printed it, with
        // what the layout's kinds need (the reported VMAs' chunk headers, the
        // threads' stack pointers), ksm_stat beside.
        asMade: () => Promise.all([
          startSmapsRead(smaps, addon.smapsScanFields, { ...layoutBeside, attribute: 'scan' }).promise,
          startRead(`/proc/${pid}/ksm_stat`).promise,
        ]),
      };
      const names = Object.keys(timed);
      const more = roundsWithin(Math.min(RUNS, 7) + 1);
      for (let i = 0; more(i); i++) {
        const round = {};
        for (let k = 0; k < names.length; k++) {
          const name = names[(i + k) % names.length];
          round[name] = await time(timed[name]);
        }
        if (i === 0) continue;
        for (const name of names) t[name].push(round[name]);
      }
      const exact = median(t.exact);
      const perGiB = ((exact - median(t.estimated)) / merged) * 1024 ** 3;
      return [
        { what: `${prefix}profit(pid, { exact: false }), ${formatBytes(merged)} merged`, ms: median(t.estimated), ratio: undefined },
        { what: `${prefix}profit(pid, { exact: true }), ${formatBytes(merged)} merged`, ms: exact, ratio: undefined },
        {
          what: `${prefix}its pagemap + kpageflags + kpagecount reads alone, the addon's (${walked.length} VMAs, ${frames.present} present, ${frames.ksm} KSM frames)`,
          ms: median(t.reads),
          ratio: undefined,
        },
        { what: `${prefix}the same reads raw from JavaScript (fs.readSync, same windows)`, ms: median(t.raw), ratio: undefined },
        {
          what: `${prefix}every read it makes: smaps + ksm_stat (fs.readFileSync) + the addon's page reads, one after another`,
          ms: median(t.allReads),
          ratio: undefined,
        },
        {
          what: `${prefix}its reads as it makes them: smaps scanned by the addon with the page reads beside it (and the layout's: ${['chunks', 'stackPointers'].filter((k) => layoutBeside?.[k]).join(', ') || 'nothing'}), ksm_stat beside that`,
          ms: median(t.asMade),
          ratio: undefined,
        },
        { what: `${prefix}profit(pid, { exact: true }) / its reads alone`, ms: undefined, ratio: exact / median(t.reads) },
        { what: `${prefix}profit(pid, { exact: true }) / every read it makes`, ms: undefined, ratio: exact / median(t.allReads) },
        { what: `${prefix}profit(pid, { exact: true }) / its reads as it makes them`, ms: undefined, ratio: exact / median(t.asMade) },
        { what: `${prefix}exact mode, extra cost per GiB merged`, ms: perGiB, ratio: undefined },
        { what: `${prefix}exact mode, rounds: ${t.exact.length} (interleaved)`, ms: undefined, ratio: undefined },
        { what: `${prefix}ksmd during the timed calls: paused (run=0), put back after`, ms: undefined, ratio: undefined },
      ];
    });
  } finally {
    for (const child of children) child.send('exit');
  }
}

if (process.getuid?.() === 0 && ksmAvailability().available && readKnob('run') === '1') {
  const bytes = Number(values.mib) * 1024 * 1024;
  rows.push(...await exactMode({ bytes, seed: 1 }, bytes, ''));
  // 3. The same with the merged pages spread over many VMAs (--spread N mappings of 4 pages).
  const spread = Number(values.spread);
  if (spread > 0) rows.push(...await exactMode({ spread }, spread * 4 * pageSize(), `spread over ${spread.toLocaleString('en')} VMAs: `));
} else {
  rows.push({ what: 'exact mode: skipped (needs root and KSM running)', ms: undefined, ratio: undefined });
}

console.log(formatTable(rows, [
  { header: 'MEASURE', value: (row) => row.what },
  { header: 'MEDIAN ms', value: (row) => row.ms, format: (ms) => ms.toFixed(1) },
  { header: 'x READ', value: (row) => row.ratio, format: (r) => r.toFixed(2) },
]));
