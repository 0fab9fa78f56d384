// 7 and 8: the reporting and estimate benchmarks live beside the modules
// they measure (bench/profit.* and bench/estimate.*, written with them).
// The harness runs each one if it is there and takes its rows:
//
//   node bench/<name>.mjs [--quick | --smoke]
//
// prints, as its last stdout line, JSON { rows: [{ figure, measured,
// comparedWith, ratio, target, verdict, notes? }], method?: string[] }.
// It is also given `--json`; bench/estimate.mjs as first written prints its
// own report object for that, which adaptEstimate() turns into rows. Output
// that is neither is kept verbatim in the report.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

export const id = 'external';
export const title = 'Reporting and estimate';

const run$ = promisify(execFile);

const BENCHES = [
  { suite: 'profit', what: 'profit() / regions() against reading the same smaps raw (100 / 1,000 / 10,000 VMAs)', target: '<= 1.2x' },
  { suite: 'scrape', what: 'one scrape of node-ksm exporter at 10 / 100 / 500 merging processes (fixture trees) and 10 / 100 real ones: time and series', target: '< 10 s; 100 real < 1 s' },
  { suite: 'estimate', what: 'estimate(): pages hashed per second on one core against sequential read bandwidth, and a crypto-hash-per-page baseline', target: '>= 50% of bandwidth' },
  { suite: 'estimate-synthetic', what: 'estimate({ all: true }) over a synthetic 16 GiB of candidate memory in 32 processes (4 GiB beside it), extrapolated to 256 GiB', target: 'measured; prediction exact' },
];

const pct = (value) => (typeof value === 'number' ? `${(value * 100).toFixed(1)}%` : 'n/a');
const num = (value, digits = 2) => (typeof value === 'number' ? value.toFixed(digits) : 'n/a');

/** bench/estimate.mjs --json: { speed: { readGBs, estimateSelf, js, ... }, accuracy }. */
function adaptEstimate(report) {
  const speed = report?.speed;
  const self = speed?.estimateSelf;
  if (!self || typeof self.ofRead !== 'number') return undefined;
  const jsBest = Math.max(...Object.values(speed.js ?? {}).map((v) => v.pagesPerSec ?? 0));
  const rows = [
    {
      figure: `estimate('self'): pages hashed per second on one core (${speed.mib ?? '?'} MiB)`,
      measured: `${num(self.samplePagesPerSec / 1e6)} M pages/s = ${num(self.GBs)} GB/s`,
      comparedWith: `sequential read on one core, same run: ${num(speed.readGBs)} GB/s`,
      ratio: `${pct(self.ofRead)} of read`,
      target: '>= 50% of read bandwidth',
      verdict: self.ofRead >= 0.5 ? 'met' : `missed by ${pct(0.5 - self.ofRead)}`,
    },
    {
      figure: "estimate('self') against hashing each page with node:crypto in JavaScript",
      measured: `${num(self.samplePagesPerSec / 1e6)} M pages/s`,
      comparedWith: `best of sha1/md5 per page into a Map: ${num(jsBest / 1e6, 3)} M pages/s`,
      ratio: self.vsJs,
      target: '',
      verdict: 'measured',
    },
  ];
  const byBatch = speed.kernelCopy?.ofReadByBatch;
  if (byBatch) {
    const best = Math.max(...Object.values(byBatch));
    rows.push({
      figure: 'process_vm_readv copy alone (no hash), one core, by pages per call: the wall under the per-thread rate',
      measured: Object.entries(byBatch).map(([b, r]) => `${b} pages ${pct(r)}`).join(', '),
      comparedWith: 'sequential read on one core, paired run by run',
      ratio: `best ${pct(best)} of read`,
      target: '',
      verdict: best < 0.5 ? 'the copy is the wall: below 50% at every batch size' : 'measured',
      notes: `estimate('self') samples at ${pct(self.ofKernelCopy)} of the copy alone at its batch (64 pages)`,
    });
  }
  const threads = report.threads;
  if (threads && typeof threads.wholeRatio === 'number') {
    const copy = speed.kernelCopy?.pagesPerSec;
    rows.push({
      figure: `estimate(child, ${threads.mib} MiB): threads=${threads.threads} against threads=1, side by side`,
      measured: `${num(threads.many.wholePagesPerSec / 1e6)} M pages/s whole call (sample ${num(threads.many.samplePagesPerSec / 1e6)})`,
      comparedWith: `threads=1: ${num(threads.one.wholePagesPerSec / 1e6)} M pages/s (sample ${num(threads.one.samplePagesPerSec / 1e6)})`,
      ratio: threads.wholeRatio,
      target: '>= 1.7x on 2 cores',
      verdict: threads.wholeRatio >= 1.7 ? 'met' : `missed: ${num(threads.wholeRatio)}x`,
      notes: `median of ${threads.rounds} rounds, ${num(threads.wholeRatioMin)}x..${num(threads.wholeRatioMax)}x; sample phase ${num(threads.sampleRatio)}x; ` +
        `median ms threads=1 / ${threads.threads}: pagemap ${num(threads.one.pagemapMs, 1)} / ${num(threads.many.pagemapMs, 1)}, sample ${num(threads.one.sampleMs, 1)} / ${num(threads.many.sampleMs, 1)}, ` +
        `confirm ${num(threads.one.confirmMs, 1)} / ${num(threads.many.confirmMs, 1)}, outside them ${num(threads.one.otherMs, 1)} / ${num(threads.many.otherMs, 1)} ` +
        `(threads=1: the smaps read and the planning before them; threads=${threads.threads}: the maps read and planning, smaps read beside the phases` +
        (threads.plannedFrom ? `, the plan kept from maps in ${threads.plannedFrom.maps} of ${threads.rounds} rounds` : '') + '); ' +
        `process_vm_readv copy alone on one core: ${num((copy ?? NaN) / 1e6)} M pages/s` +
        (typeof threads.nativeRatio === 'number'
          ? `; the child's smaps read raw (one kernel walk, on one thread): ${num(threads.smapsMs, 1)} ms; ` +
            `whole call if the native phases scaled perfectly: ${num(threads.wholeRatioBound)}x`
          : ''),
    });
    if (typeof threads.mapsFirstGain === 'number') {
      rows.push({
        figure: `estimate(child, ${threads.mib} MiB) at threads=${threads.threads}: smaps read beside the hashing (maps' plan first) against smaps read first`,
        measured: `${num(threads.many.elapsedMs, 1)} ms`,
        comparedWith: `smaps first (NODE_KSM_ESTIMATE_MAPS=0), same threads: ${num(threads.smapsFirstMs, 1)} ms`,
        ratio: threads.mapsFirstGain,
        target: '',
        verdict: 'measured',
        notes: `median of ${threads.rounds} rounds of the three calls in turn (threads=1, maps first, smaps first; each order as often); smaps first against threads=1: ${num(threads.wholeRatioSmapsFirst)}x`,
      });
    }
    const busy = threads.busy;
    if (busy) {
      rows.push({
        figure: `estimate(${busy.what}) at threads=${threads.threads}: maps' plan first against smaps first`,
        measured: `${num(busy.mapsFirstMs, 0)} ms (planned from ${Object.entries(busy.plannedFrom).map(([k, n]) => `${k} ${n}`).join(', ')})`,
        comparedWith: `smaps first: ${num(busy.smapsFirstMs, 0)} ms; threads=1: ${num(busy.oneMs, 0)} ms`,
        ratio: busy.gain,
        target: '',
        verdict: 'measured',
        notes: `median of ${busy.rounds} rounds; a layout that moves between two reads of maps is read smaps first (plannedFrom 'smaps'), so such a target pays no second read`,
      });
    }
    if (typeof threads.nativeRatio === 'number') {
      rows.push({
        figure: `estimate(child, ${threads.mib} MiB), its native phases (pagemap, sample, confirm): threads=${threads.threads} against threads=1`,
        measured: `${num(threads.many.nativeMs, 1)} ms`,
        comparedWith: `threads=1: ${num(threads.one.nativeMs, 1)} ms`,
        ratio: threads.nativeRatio,
        target: '',
        verdict: 'measured',
        notes: `a diagnostic of the row above (its target is the whole call's): at threads=${threads.threads} the phases share the cores with the smaps read beside them, at threads=1 they run after it` +
          (threads.copy ? `; the process_vm_readv copy alone on ${threads.threads} threads at once: ${num(threads.copy.ratio)}x one thread's (median of ${threads.copy.ratios.length})` : ''),
      });
    }
    const d = threads.delay;
    rows.push({
      figure: `event-loop delay during estimate(child) at threads=${threads.threads} (monitorEventLoopDelay, 10 ms resolution)`,
      measured: `p50 ${num(d.during.p50)} ms, p99 ${num(d.during.p99)} ms, max ${num(d.during.max)} ms`,
      comparedWith: `idle loop, same length (${num(d.estimateMs, 0)} ms): p50 ${num(d.idle.p50)}, p99 ${num(d.idle.p99)}, max ${num(d.idle.max)} ms`,
      ratio: d.during.p99 / d.idle.p99,
      target: '',
      verdict: 'measured',
    });
  }
  const machine = report.wholeMachine;
  if (machine && typeof machine.ms === 'number') {
    rows.push({
      figure: `estimate({ all: true }) / \`node-ksm estimate --all\` on this machine (${machine.estimated} of ${machine.listed} processes, ${num(machine.pagesHashed / 1e3, 0)} k pages)`,
      measured: `${num(machine.ms / 1e3)} s, peak RSS ${num(machine.maxRssBytes / 2 ** 20, 1)} MiB`,
      comparedWith: `estimator's own memory ${num(machine.memoryBytes / 2 ** 20, 1)} MiB (${num(machine.memoryBytes / machine.pagesHashed, 1)} B per page hashed)`,
      ratio: undefined,
      target: '',
      verdict: 'measured',
      notes: `median of ${machine.runs} fresh processes (${num(machine.msMin / 1e3)}..${num(machine.msMax / 1e3)} s) on ${machine.threads} threads; left out: ${Object.entries(machine.skipped ?? {}).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ')}`,
    });
  }
  const accuracy = report.accuracy;
  if (accuracy && typeof accuracy.errorOfCandidates === 'number') {
    rows.push({
      figure: 'estimate() prediction against what KSM then merged (4 workers)',
      measured: `predicted ${num(accuracy.predictedSavedPages, 1)} pages saved`,
      comparedWith: `merged ${accuracy.mergedSavedPages} (pagemap + kpageflags)`,
      ratio: `${pct(accuracy.errorOfCandidates)} error`,
      target: '<= 2% of candidate pages',
      verdict: accuracy.errorOfCandidates <= 0.02 ? 'met' : 'missed',
    });
  } else if (accuracy?.skipped) {
    rows.push({ figure: 'estimate() accuracy', measured: `skipped: ${accuracy.skipped}`, verdict: 'skipped' });
  }
  return rows;
}

/** bench/profit.mjs prints a table: MEASURE, MEDIAN ms, x READ (2+ spaces apart). */
function parseTable(text) {
  const out = [];
  for (const line of text.split('\n').slice(1)) {
    const match = /^(.*?)\s{2,}(\S+)\s+(\S+)$/.exec(line.trimEnd());
    if (match) out.push({ what: match[1], ms: Number(match[2]), ratio: match[3] === '-' ? undefined : Number(match[3]) });
  }
  return out;
}

/** A ratio's target and verdict, for a figure that must stay at or under `limit`x. */
function atMost(ratio, limit) {
  return { target: `<= ${limit}x`, verdict: ratio <= limit ? 'met' : `missed: ${num(ratio)}x` };
}

function adaptProfit(stdout, label) {
  const table = parseTable(stdout);
  const find = (prefix) => table.find((row) => row.what.startsWith(prefix));
  const read = find('read smaps (');
  if (!read) return undefined;
  const rows = [];
  const all = find('read smaps + ksm_stat (what profit reads)');
  const rounds = /^rounds: (\d+)/.exec(find('rounds: ')?.what ?? '')?.[1];
  const allRollup = find('read smaps + smaps_rollup + ksm_stat');
  // Each call's floor: its reads made by the addon as the call makes them, nothing done with what they bring (no JavaScript after).
  for (const [prefix, name, floorPrefix] of [
    ['profit(pid, { exact: false })', 'profit(pid)', 'the same scan with what profit(pid) reads beside it'],
    ['regions(pid)', 'regions(pid)', 'the same scan with what regions(pid) reads beside it'],
    ['profit(pid, { exact: false, layoutReads: false })', 'profit(pid, { layoutReads: false })', 'the same scan with ksm_stat read beside it'],
    ['regions(pid, { layoutReads: false })', 'regions(pid, { layoutReads: false })', 'read smaps scanned by the addon ('],
  ]) {
    const row = table.find((r) => r.what === prefix);
    const floor = find(floorPrefix);
    const overFloor = table.find((r) => r.what === `${prefix} / its reads made by the addon alone`)?.ratio;
    const cpu = find(`CPU time: ${prefix}`);
    const thread = table.find((r) => r.what === `the JavaScript thread's CPU: ${prefix}`);
    const phase = (part) => table.find((r) => r.what.startsWith(`where ${prefix}'s time goes: ${part}`));
    const [before, during, after] = ['before', 'its smaps read', 'after'].map(phase);
    if (!row) continue;
    rows.push({
      figure: `${name}, ${label}: ${read.what.replace(/^read smaps \((.*)\), fs.readFileSync$/, '$1')}`,
      measured: `${num(row.ms, 1)} ms`,
      comparedWith: `reading the same smaps raw (fs.readFileSync): ${num(read.ms, 1)} ms`,
      ratio: row.ratio,
      ...atMost(row.ratio, 1.2),
      ...(floor && row.ratio > 1.2 ? { verdict: `missed: ${num(row.ratio)}x (its reads alone, made by the addon: ${num(floor.ratio)}x)` } : {}),
      notes: [
        rounds ? `medians of ${rounds} interleaved rounds` : undefined,
        floor && typeof overFloor === 'number'
          ? `its reads made by the addon as it makes them, nothing done with what they bring: ${num(floor.ms, 1)} ms, ${num(floor.ratio)}x of the raw read; the call against them ${num(overFloor)}x (what its JavaScript adds)`
          : undefined,
        cpu ? `CPU time ${num(cpu.ms, 1)} ms, ${num(cpu.ratio)}x of the raw read's CPU time` : undefined,
        thread ? `on the JavaScript thread ${num(thread.ms, 2)} ms, ${num(thread.ratio)}x of what fs.readFileSync takes of it` : undefined,
        before && during && after
          ? `its time: ${num(before.ratio)}x before its smaps read starts, ${num(during.ratio)}x the read with what it reads beside, ${num(after.ratio)}x after the scan came`
          : undefined,
        !name.includes('layoutReads') ? "with the reads of Node's kinds (thread stacks' pointers, malloc chunk headers)" : 'smaps and the files beside it only',
        name.startsWith('profit(pid') && all ? `what profit reads (smaps + ksm_stat) raw: ${num(all.ms, 1)} ms, ${num(all.ratio)}x` : undefined,
      ].filter(Boolean).join('; ') || undefined,
    });
  }
  // profit() reads ksm_stat beside smaps, and with rollup: true smaps_rollup (a second walk of the page tables): against those reads.
  const against = [
    ['profit(pid, { exact: false, layoutReads: false })', 'profit(pid, { layoutReads: false })', all, 'smaps + ksm_stat'],
    ['profit(pid, { exact: false, layoutReads: false, rollup: true })', 'profit(pid, { layoutReads: false, rollup: true })', allRollup, 'smaps + smaps_rollup + ksm_stat'],
  ];
  for (const [prefix, name, files, which] of against) {
    const row = table.find((r) => r.what === prefix);
    if (!files || !row) continue;
    const ratio = row.ms / files.ms;
    rows.push({
      figure: `${name} against every file it reads, ${label}: ${read.what.replace(/^read smaps \((.*)\), fs.readFileSync$/, '$1')}`,
      measured: `${num(row.ms, 1)} ms`,
      comparedWith: `${which} raw (fs.readFileSync), one after another: ${num(files.ms, 1)} ms`,
      ratio,
      ...atMost(ratio, 1.2),
      notes: [rounds ? `medians of ${rounds} interleaved rounds` : undefined, `against the raw smaps read alone: ${num(row.ratio)}x`].filter(Boolean).join('; '),
    });
  }
  // With the layout's reads, regions() reads more than smaps: against every read it makes.
  const regionsReads = find('every read regions(pid) makes');
  const regionsRatio = find('regions(pid) / every read it makes')?.ratio;
  if (regionsReads && typeof regionsRatio === 'number') {
    rows.push({
      figure: `regions(pid) against every read it makes, ${label}: ${read.what.replace(/^read smaps \((.*)\), fs.readFileSync$/, '$1')}`,
      measured: `${num(table.find((r) => r.what === 'regions(pid)')?.ms, 1)} ms`,
      comparedWith: `${regionsReads.what.replace(/^every read regions\(pid\) makes: /, '')}: ${num(regionsReads.ms, 1)} ms`,
      ratio: regionsRatio,
      ...atMost(regionsRatio, 1.2),
      ...(rounds ? { notes: `medians of ${rounds} interleaved rounds` } : {}),
    });
  }
  rows.push(...exactRows(find, ''));
  // The same with the merged pages spread over many VMAs (--spread).
  const spread = /^(spread over [\d,]+ VMAs: )/.exec(table.find((r) => r.what.startsWith('spread over'))?.what ?? '')?.[1];
  if (spread) rows.push(...exactRows(find, spread));
  return rows;
}

/** Exact mode's rows of a bench/profit.mjs table, those whose names start with `prefix`. */
function exactRows(findAny, prefix) {
  const find = (name) => findAny(`${prefix}${name}`);
  const rows = [];
  const extra = find('exact mode, extra cost per GiB');
  const exact = find('profit(pid, { exact: true })');
  if (!extra || !exact) return rows;
  const what = `${prefix.replace(/: $/, ', ')}${exact.what.slice(prefix.length).replace(/^.*\), /, '')}`;
  const paused = find('ksmd during the timed calls');
  const rounds = /rounds: (\d+)/.exec(find('exact mode, rounds: ')?.what ?? '')?.[1];
  const median = rounds ? `medians of ${rounds} interleaved rounds` : undefined;
  rows.push({
    figure: `profit(pid, { exact: true }) (pagemap + kpageflags), ${what}`,
    measured: `${num(exact.ms, 1)} ms`,
    comparedWith: `exact: false on the same process: ${num(find('profit(pid, { exact: false }),')?.ms, 1)} ms`,
    ratio: undefined,
    target: '',
    verdict: 'measured',
    notes: [median, `exact mode costs ${num(extra.ms, 0)} ms more per GiB merged`, paused ? 'ksmd paused for the timed calls' : undefined].filter(Boolean).join('; '),
  });
  const reads = find('its pagemap + kpageflags + kpagecount reads alone');
  const raw = find('the same reads raw from JavaScript');
  const ratio = find('profit(pid, { exact: true }) / its reads alone')?.ratio;
  const asMade = find('its reads as it makes them');
  if (reads && typeof ratio === 'number') {
    rows.push({
      figure: `profit(pid, { exact: true }) against its own page reads, ${what}`,
      measured: `${num(exact.ms, 1)} ms`,
      comparedWith: `${reads.what.slice(prefix.length).replace(/^its /, 'the same ')}: ${num(reads.ms, 1)} ms`,
      ratio,
      ...atMost(ratio, 1.5),
      // Missed where even its reads, made as it makes them (smaps first), are past the target: say so in the verdict.
      ...(asMade && ratio > 1.5 ? { verdict: `missed: ${num(ratio)}x (its reads as it makes them, smaps with them: ${num(asMade.ms / reads.ms)}x of the page reads alone)` } : {}),
      notes: [
        median,
        raw ? `the same reads made raw from JavaScript (fs.readSync, the addon's windows): ${num(raw.ms, 1)} ms` : undefined,
        // Only smaps tells which VMAs hold KSM pages (maps has no VmFlags, ksm_stat no per-VMA figure):
        // the page reads of a VMA start once the kernel has printed it, and smaps itself is read whole.
        asMade ? `smaps must be read to know what to walk, and a VMA's page reads can start only once smaps has printed it: made so (beside the scan, the least the kernel allows), the reads take ${num(asMade.ms, 1)} ms, ${num(asMade.ms / reads.ms)}x of the page reads alone` : undefined,
      ].filter(Boolean).join('; ') || undefined,
    });
  }
  // Exact mode also reads smaps and ksm_stat: against every read it makes, one after another and as it makes them.
  const every = find('every read it makes');
  const everyRatio = find('profit(pid, { exact: true }) / every read it makes')?.ratio;
  if (every && typeof everyRatio === 'number') {
    rows.push({
      figure: `profit(pid, { exact: true }) against every read it makes, ${what}`,
      measured: `${num(exact.ms, 1)} ms`,
      comparedWith: `smaps + ksm_stat (fs.readFileSync) + the addon's page reads, one after another: ${num(every.ms, 1)} ms`,
      ratio: everyRatio,
      ...atMost(everyRatio, 1.5),
    });
  }
  const asMadeRatio = find('profit(pid, { exact: true }) / its reads as it makes them')?.ratio;
  if (asMade && typeof asMadeRatio === 'number') {
    rows.push({
      figure: `profit(pid, { exact: true }) against its reads made as it makes them, ${what}`,
      measured: `${num(exact.ms, 1)} ms`,
      comparedWith: `smaps scanned by the addon with the page reads of each VMA with KSM pages beside it (they can start only once smaps has printed that VMA), the layout's reads (${/\(and the layout's: ([^)]*)\)/.exec(asMade.what)?.[1] ?? 'none'}) and ksm_stat beside: ${num(asMade.ms, 1)} ms`,
      ratio: asMadeRatio,
      ...atMost(asMadeRatio, 1.5),
      notes: [median, every ? `smaps + ksm_stat and the page reads one after another: ${num(every.ms, 1)} ms` : undefined].filter(Boolean).join('; ') || undefined,
    });
  }
  return rows;
}

const ADAPTERS = { estimate: adaptEstimate };

/** How each script is run: one or more invocations, each adapted to rows. */
function invocations(bench, ctx) {
  if (bench.suite === 'profit') {
    // Its own flags (strict): --vmas, --mib (the exact-mode merge), --runs.
    const counts = ctx.quick ? [100, 10000] : [100, 1000, 10000];
    return counts.map((vmas) => ({
      label: `${vmas.toLocaleString('en')} VMAs asked for`,
      args: [
        '--vmas', String(vmas), '--mib', vmas === 10000 ? (ctx.quick ? '64' : '256') : '16', '--runs', ctx.quick ? '7' : '15',
        // Exact mode on pages merged across many VMAs, once.
        ...(vmas === 1000 ? ['--spread', '2000'] : []),
      ],
      adapt: (stdout, label) => adaptProfit(stdout, label),
    }));
  }
  // Its own flags: the size is --gib (16 GiB needs 20 GiB available; --quick holds 4).
  if (bench.suite === 'estimate-synthetic') return [{ label: '', args: ['--json', ...(ctx.quick ? ['--quick'] : [])], adapt: undefined }];
  return [{ label: '', args: ['--json', ...(ctx.quick ? ['--quick', '--mib', '128'] : [])], adapt: undefined }];
}

function parseOutput(stdout) {
  const text = stdout.trim();
  for (const candidate of [text.split('\n').pop() ?? '', text.slice(text.indexOf('{'))]) {
    try {
      return JSON.parse(candidate);
    } catch {
      /* try the next */
    }
  }
  return undefined;
}

function find(root, name) {
  for (const ext of ['mjs', 'cjs', 'js']) {
    const file = path.join(root, 'bench', `${name}.${ext}`);
    if (fs.existsSync(file)) return file;
  }
  return undefined;
}

export async function run(ctx) {
  const rows = [];
  const method = [];
  for (const bench of BENCHES) {
    if (ctx.only && !ctx.only.includes(bench.suite) && !ctx.only.includes('external')) continue;
    const command = `npm run bench -- --only ${bench.suite}`;
    const file = find(ctx.root, bench.suite);
    if (!file) {
      rows.push({ suite: bench.suite, figure: bench.what, measured: 'pending', comparedWith: '', ratio: 'pending', target: bench.target, verdict: `pending: bench/${bench.suite}.mjs not there yet`, command });
      method.push(`${bench.suite}: pending. bench/${bench.suite}.mjs is written with the module it measures and was not in this checkout; the harness runs it as soon as it is (contract in bench/README.md).`, '');
      continue;
    }
    if (ctx.smoke) {
      // The smoke run checks the harness, not other people's benchmarks.
      rows.push({ suite: bench.suite, figure: bench.what, measured: `bench/${path.basename(file)} present, not run in --smoke`, target: bench.target, verdict: 'not run', command });
      continue;
    }
    for (const invocation of invocations(bench, ctx)) {
      const args = [file, ...invocation.args];
      let stdout = '';
      try {
        ({ stdout } = await run$(process.execPath, args, { cwd: ctx.root, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60_000 }));
      } catch (error) {
        rows.push({ suite: bench.suite, figure: `${bench.what} ${invocation.label}`, measured: `failed: ${String(error.message).split('\n')[0]}`, verdict: 'failed', target: bench.target, command });
        continue;
      }
      const shown = `\`node ${path.relative(ctx.root, file)} ${invocation.args.join(' ')}\``;
      const parsed = parseOutput(stdout);
      const adapted = invocation.adapt
        ? invocation.adapt(stdout, invocation.label)
        : parsed && !Array.isArray(parsed.rows) ? ADAPTERS[bench.suite]?.(parsed) : undefined;
      if (adapted) {
        for (const row of adapted) rows.push({ suite: bench.suite, command, ...row });
        method.push(`${bench.suite}: ${shown} printed (turned into the rows above):`, '', '```', stdout.trim(), '```', '');
      } else if (parsed && Array.isArray(parsed.rows)) {
        for (const row of parsed.rows) rows.push({ suite: bench.suite, command, ...row });
        if (Array.isArray(parsed.method)) method.push(...parsed.method, '');
      } else {
        rows.push({ suite: bench.suite, figure: bench.what, measured: 'see output below', target: bench.target, verdict: 'unparsed', command });
        method.push(`${shown} printed:`, '', '```', stdout.trim(), '```', '');
      }
    }
    ctx.log(`${bench.suite}: ${rows.filter((r) => r.suite === bench.suite).length} row(s)`);
  }
  return { rows, method, command: 'npm run bench -- --only profit,estimate,estimate-synthetic' };
}
