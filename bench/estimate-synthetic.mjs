// estimate({ all: true }) over a synthetic machine: `--processes` holders
// (python, bench/workers/synthetic.py) sharing `--gib` GiB of private
// anonymous memory with a known duplicate layout: half of each holder's pages
// identical across the holders, an eighth zero pages, the rest random. The
// estimate runs in fresh node processes; its prediction for the holders'
// mappings is checked against what the layout says it must be, and time and
// memory are measured at a quarter of the size and at the full size, so that
// the linear extrapolation to a 256 GiB host rests on a measured slope.
//
//   node bench/estimate-synthetic.mjs [--gib 16] [--processes 32] [--runs 3] [--smoke] [--json]
//
// A dry run: no knob is changed and the holders are never MADV_MERGEABLE.
// Needs a built package (npm run build), python3, and MemAvailable of the
// size plus 4 GiB (it refuses otherwise). Holders die with the bench: they
// exit on stdin EOF and have PR_SET_PDEATHSIG, and are killed on every exit.
// The last stdout line is JSON { rows, method } for bench/run.mjs.
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import { stopHolder } from './lib/workers.mjs';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const { values } = parseArgs({
  options: {
    gib: { type: 'string' },
    processes: { type: 'string' },
    runs: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const smoke = values.smoke;
const totalBytes = Math.round(Number(values.gib ?? (smoke ? 1 / 16 : values.quick ? 4 : 16)) * GiB);
const processes = Number(values.processes ?? (smoke ? 4 : 32));
const runs = Number(values.runs ?? (smoke ? 1 : 3));
if (!(totalBytes >= MiB) || !Number.isInteger(processes) || processes < 2 || processes > 1024 || !Number.isInteger(runs) || runs < 1) {
  throw new RangeError('--gib must be at least 1/1024, --processes an integer in 2..1024, --runs a positive integer');
}
const PAGE = 4096;
/** Two sizes, a quarter and the whole, so the slope is measured, not assumed. */
const SIZES = [totalBytes / 4, totalBytes].map((bytes) => Math.floor(bytes / processes / PAGE) * PAGE * processes);

const live = new Set();
function killAll() {
  for (const child of live) child.kill('SIGKILL');
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[signal]);
  });
}

function memAvailable() {
  const kb = /^MemAvailable:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return kb === undefined ? undefined : Number(kb) * 1024;
}

function checkMemory(bytes) {
  const available = memAvailable();
  const needed = bytes + 4 * GiB;
  if (available === undefined || available < needed) {
    const have = available === undefined ? 'unknown' : `${(available / GiB).toFixed(1)} GiB`;
    console.error(`estimate-synthetic: refusing to hold ${(bytes / GiB).toFixed(2)} GiB: MemAvailable is ${have}, needs ${(needed / GiB).toFixed(1)} GiB (the size + 4 GiB). Try a smaller --gib.`);
    process.exit(2);
  }
}

/** The layout of one holder: what each of its pages is. */
function layout(bytes) {
  const pages = bytes / PAGE;
  return { pages, shared: Math.floor(pages / 2), zero: Math.floor(pages / 8) };
}

function startHolder(spec) {
  const child = spawn('python3', [path.join(ROOT, 'bench', 'workers', 'synthetic.py'), JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'inherit'] });
  live.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  exited.then(() => live.delete(child));
  const ready = new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line)));
    exited.then((code) => reject(new Error(`holder exited (${code}) before it was ready`)));
  });
  return ready.then((r) => ({
    pid: r.pid,
    fillMs: r.fillMs,
    start: r.start,
    end: r.end,
    stop: () => stopHolder(child, exited),
  }));
}

/** Run in a fresh node: estimate({ all: true }) and what it says of the holders' mappings. */
const CHILD = `
const fs = require('node:fs');
const ksm = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
const holders = JSON.parse(process.argv[1]);
const t0 = performance.now();
ksm.estimate({ all: true, useZeroPages: true }).then((r) => {
  const ms = performance.now() - t0;
  const byPid = new Map(r.processes.map((p) => [p.pid, p]));
  let matched = 0, saved = 0, candidates = 0, zero = 0, duplicates = 0;
  for (const h of holders) {
    const vma = byPid.get(h.pid)?.vmas.find((v) => v.start === BigInt(h.start) && v.end === BigInt(h.end));
    if (vma === undefined) continue;
    matched++;
    saved += vma.predictedSavedPages;
    candidates += vma.candidatePages;
    zero += vma.zeroPages;
    duplicates += vma.duplicatePages;
  }
  const hwm = /^VmHWM:\\s+(\\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  console.log(JSON.stringify({ ms, elapsedMs: r.elapsedMs, timings: r.timings, memoryBytes: r.memoryBytes, pagesHashed: r.pagesHashed,
    threads: r.threads, listed: r.all.listed, estimated: r.all.estimated, predictedSavedBytes: r.predictedSavedBytes,
    maxPageSharing: r.maxPageSharing, maxRssBytes: process.resourceUsage().maxRSS * 1024, vmHwmBytes: hwm ? Number(hwm[1]) * 1024 : undefined,
    holders: { matched, savedPages: saved, candidatePages: candidates, zeroPages: zero, duplicatePages: duplicates } }));
}, (error) => { console.error(error); process.exit(1); });`;

const run$ = promisify(execFile);
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];

async function measure(bytes) {
  checkMemory(bytes);
  const perHolder = bytes / processes;
  const shape = layout(perHolder);
  const t0 = performance.now();
  const holders = [];
  try {
    // Started together (their pages are written in parallel); each waits for its own line.
    const started = await Promise.allSettled(Array.from({ length: processes }, () => startHolder({ size: perHolder, shared: shape.shared, zero: shape.zero, seed: 0x5eed })));
    for (const s of started) if (s.status === 'fulfilled') holders.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const fillS = (performance.now() - t0) / 1000;
    const spec = JSON.stringify(holders.map((h) => ({ pid: h.pid, start: h.start, end: h.end })));
    const results = [];
    for (let i = 0; i < runs; i++) {
      const { stdout } = await run$(process.execPath, ['-e', CHILD, spec], { cwd: ROOT, maxBuffer: 1 << 26, timeout: 30 * 60_000 });
      results.push(JSON.parse(stdout.trim().split('\n').pop()));
    }
    // What the layout says: a class of `processes` equal pages keeps ceil(processes / max_page_sharing)
    // copies, each page carrying an equal share; zero pages all go (useZeroPages: true); random pages stay.
    // Phases and memory of the median run: the wall time varies with the machine's other load.
    const last = [...results].sort((a, b) => a.ms - b.ms)[Math.floor(results.length / 2)];
    const copies = Math.ceil(processes / last.maxPageSharing);
    const expectedPages = processes * (shape.shared * (processes - copies) / processes + shape.zero);
    const pick = (key) => median(results.map((r) => r[key]));
    return {
      bytes, perHolder, shape, fillS, runs: results.length,
      ms: pick('ms'), msMin: Math.min(...results.map((r) => r.ms)), msMax: Math.max(...results.map((r) => r.ms)),
      elapsedMs: last.elapsedMs, maxRssBytes: pick('maxRssBytes'), vmHwmBytes: pick('vmHwmBytes'),
      memoryBytes: last.memoryBytes, pagesHashed: last.pagesHashed, threads: last.threads, listed: last.listed, estimated: last.estimated,
      timings: last.timings, machineSavedBytes: last.predictedSavedBytes, holders: last.holders,
      expectedSavedBytes: expectedPages * PAGE, predictedHolderBytes: last.holders.savedPages * PAGE,
    };
  } finally {
    await Promise.all(holders.map((h) => h.stop()));
    killAll();
  }
}

const gib = (bytes) => `${(bytes / GiB).toFixed(bytes < GiB ? 3 : 2)} GiB`;
const mib = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;
const sec = (ms) => `${(ms / 1000).toFixed(2)} s`;
/** The estimator's own phases, and the rest of its elapsed time (listing /proc, smaps, planning in JS). */
function phases(m) {
  const t = m.timings;
  const rest = m.elapsedMs - t.pagemapMs - t.sampleMs - t.resampleMs - t.confirmMs;
  return `pagemap ${t.pagemapMs.toFixed(0)}, sample ${t.sampleMs.toFixed(0)}, resample ${t.resampleMs.toFixed(0)}, confirm ${t.confirmMs.toFixed(0)}, rest ${rest.toFixed(0)} of elapsedMs ${m.elapsedMs.toFixed(0)}`;
}

checkMemory(Math.max(...SIZES)); // before any holder: refuse the run, not its second half
const measured = [];
for (const bytes of SIZES) {
  const m = await measure(bytes);
  measured.push(m);
  const error = (m.predictedHolderBytes - m.expectedSavedBytes) / m.expectedSavedBytes;
  console.log(`${gib(bytes)} in ${processes} holders (filled in ${m.fillS.toFixed(1)} s): estimate({ all: true }) ${sec(m.ms)} (median of ${m.runs}, ${sec(m.msMin)}..${sec(m.msMax)}), ` +
    `${m.pagesHashed} pages hashed on ${m.threads} threads, estimator memory ${mib(m.memoryBytes)}, peak RSS ${mib(m.maxRssBytes)} (VmHWM ${mib(m.vmHwmBytes)}), ` +
    `${m.estimated} of ${m.listed} processes; phases of the median run, ms: ${phases(m)}`);
  console.log(`  holders' mappings (${m.holders.matched}/${processes} found): predicted ${m.predictedHolderBytes} B saved, layout says ${m.expectedSavedBytes} B: error ${(error * 100).toFixed(4)}%; whole machine predicted ${gib(m.machineSavedBytes)}`);
}

const [small, big] = measured;
/** Linear through the two sizes: value at `bytes`. */
const line = (key, bytes) => small[key] + ((big[key] - small[key]) / (big.bytes - small.bytes)) * (bytes - small.bytes);
const HOST = 256 * GiB;
const msPerGiB = ((big.ms - small.ms) / (big.bytes - small.bytes)) * GiB;
const bytesPerPage = (big.memoryBytes - small.memoryBytes) / ((big.bytes - small.bytes) / PAGE);
const rssPerPage = (big.maxRssBytes - small.maxRssBytes) / ((big.bytes - small.bytes) / PAGE);

const rows = measured.map((m) => {
  const error = (m.predictedHolderBytes - m.expectedSavedBytes) / m.expectedSavedBytes;
  return {
    figure: `estimate({ all: true }), synthetic ${gib(m.bytes)} of candidate memory in ${processes} processes (${m.estimated} of ${m.listed} processes on the machine)`,
    measured: `${sec(m.ms)}, peak RSS ${mib(m.maxRssBytes)}`,
    comparedWith: `estimator memory ${mib(m.memoryBytes)} (${(m.memoryBytes / m.pagesHashed).toFixed(1)} B per page hashed), ${m.pagesHashed} pages on ${m.threads} threads`,
    ratio: `prediction error ${(error * 100).toFixed(4)}%`,
    target: 'measured; prediction exact',
    verdict: m.holders.matched === processes && Math.abs(error) < 1e-6 ? 'measured, prediction exact' : 'measured, prediction off',
    notes: `median of ${m.runs} fresh processes (${sec(m.msMin)}..${sec(m.msMax)}); phases of the median run, ms: ${phases(m)}; holders predicted ${m.predictedHolderBytes} B saved against ${m.expectedSavedBytes} B from the layout`,
  };
});
rows.push({
  figure: `linearity: ${gib(big.bytes)} against ${gib(small.bytes)} (${(big.bytes / small.bytes).toFixed(0)}x the memory)`,
  measured: `${(big.ms / small.ms).toFixed(2)}x the time, ${(big.memoryBytes / small.memoryBytes).toFixed(2)}x the estimator memory, ${(big.maxRssBytes / small.maxRssBytes).toFixed(2)}x the peak RSS`,
  comparedWith: `slope: ${(msPerGiB / 1000).toFixed(2)} s per GiB, ${bytesPerPage.toFixed(1)} B estimator memory and ${rssPerPage.toFixed(1)} B peak RSS per candidate page`,
  ratio: '',
  target: '',
  verdict: 'measured',
});
rows.push({
  figure: `EXTRAPOLATION (not measured): estimate({ all: true }) on a 256 GiB host of such memory, at ${big.threads} threads`,
  measured: `${(line('ms', HOST) / 1000).toFixed(0)} s, peak RSS ${gib(line('maxRssBytes', HOST))}`,
  comparedWith: `estimator memory ${gib(line('memoryBytes', HOST))}`,
  ratio: '',
  target: '',
  verdict: 'extrapolated',
  notes: `linear through the two measured sizes (${gib(small.bytes)}, ${gib(big.bytes)}); a host with more cores runs more threads (all but one by default), so its time is an upper bound`,
});
for (const row of rows.slice(-2)) console.log(`${row.figure}: ${row.measured} | ${row.comparedWith}`);
console.log(JSON.stringify({
  rows,
  processes,
  sizes: measured.map(({ bytes, shape, ms, elapsedMs, timings, memoryBytes, maxRssBytes, vmHwmBytes, pagesHashed, threads, holders, expectedSavedBytes, predictedHolderBytes }) => (
    { bytes, shape, ms, elapsedMs, timings, memoryBytes, maxRssBytes, vmHwmBytes, pagesHashed, threads, holders, expectedSavedBytes, predictedHolderBytes })),
  method: [
    `\`node bench/estimate-synthetic.mjs --gib ${totalBytes / GiB} --processes ${processes}\`: ${processes} python holders (bench/workers/synthetic.py), each one private anonymous mapping (MADV_NOHUGEPAGE, never MADV_MERGEABLE), every page written: half the pages identical across the holders, an eighth zero pages, the rest random.`,
    `Each size is timed in ${runs} fresh node processes running estimate({ all: true, useZeroPages: true }) (the whole machine: the holders and every other process); the figure is the median. Peak RSS: process.resourceUsage().maxRSS of that process.`,
    "Exact by construction: a class of N equal pages keeps ceil(N / max_page_sharing) copies and every zero page goes, so the holders' mappings must save N x (shared x (N - copies) / N + zero) pages; the row compares the estimator's per-VMA prediction with that.",
    'The 256 GiB row is an extrapolation, a straight line through the two measured sizes, not a measurement.',
  ],
}));
