// Tables and summary rows of the v8-heap suite.
import { median, mib, pct, ratio } from './stats.mjs';

const KINDS = { code: 'code-heavy group (TypeScript)', http: 'HTTP server (cluster)' };
const CLASSES = ['v8-old', 'v8-young', 'v8-large', 'v8-code', 'v8-read-only', 'v8-shared', 'malloc-brk', 'malloc-arena', 'thread-stack', 'stack', 'file', 'other'];

/** "median (min..max, n runs)" of a list, formatted. */
function spread(values, format) {
  const list = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (list.length === 0) return 'n/a';
  if (list.length === 1) return format(list[0]);
  return `${format(median(list))} (${format(Math.min(...list))}..${format(Math.max(...list))})`;
}

const share = (runs, phase) => runs.map((r) => r[phase].share);
const fixed = (digits) => (v) => v.toFixed(digits);

/** Per-repeat ratios a/b (same repeat index: run next to each other). */
function pairRatios(a, b, pick) {
  const out = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) out.push(pick(a[i]) / pick(b[i]));
  return out;
}

export function issueTable(issue) {
  const lines = [
    '### The issue\'s table, reproduced',
    '',
    'Transpile workers, raw flags (no preload: Math.random() is whatever the flags make it), `enableMerge()` in each worker.',
    '',
    '| node flags | saved (exact, % of anonymous) | saved per group | Math.random() the same in every worker |',
    '|---|---|---|---|',
  ];
  for (const row of issue) {
    lines.push(
      `| ${row.flags.map((f) => `\`${f.replace(/=\d+$/, '=S')}\``).join(' ') || '(none)'} | ${spread(row.runs.map((r) => r.saving.share), (v) => pct(v))} | ` +
        `${spread(row.runs.map((r) => r.saving.netBytes), (v) => mib(v))} | ${row.runs.every((r) => r.sameRandom) ? 'yes' : 'no'} |`,
    );
  }
  lines.push('', 'S: a random seed per group. Figures: median (min..max) over the runs.', '');
  return lines;
}

export function mainTable(results, n) {
  const lines = [];
  for (const [kind, byLabel] of Object.entries(results)) {
    lines.push(
      `### ${KINDS[kind]}: saving and cost side by side`,
      '',
      '| group | saved after start-up | after traffic | group only: start-up / traffic | anonymous per worker (start-up) | throughput | p99 latency | CPU per op | GC pause total / max | start-up CPU per worker |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const [label, runs] of Object.entries(byLabel)) {
      const unit = runs[0].cost.unit;
      lines.push(
        `| ${label} | ${spread(share(runs, 'startup'), pct)} (${mib(median(runs.map((r) => r.startup.netBytes)))}) | ` +
          `${spread(share(runs, 'traffic'), pct)} (${mib(median(runs.map((r) => r.traffic.netBytes)))}) | ` +
          `${mib(median(runs.map((r) => r.startup.groupOnly.profitBytes)))} / ${mib(median(runs.map((r) => r.traffic.groupOnly.profitBytes)))} | ` +
          `${mib(median(runs.map((r) => r.startup.anonymous)) / n)} | ${spread(runs.map((r) => r.cost.throughput), fixed(0))} ${unit} | ` +
          `${spread(runs.map((r) => r.cost.p99), fixed(2))} ms | ${spread(runs.map((r) => r.cost.cpuPerOpMs), fixed(3))} ms | ` +
          `${spread(runs.map((r) => r.cost.gc.totalMs), fixed(0))} / ${spread(runs.map((r) => r.cost.gc.maxMs), fixed(1))} ms | ` +
          `${spread(runs.map((r) => r.startupCpuMs), fixed(0))} ms |`,
      );
    }
    const heaps = byLabel.heaps ?? [];
    const plain = byLabel.plain ?? [];
    lines.push(
      '',
      `heaps against plain, run by run: saving after traffic ${spread(pairRatios(heaps, plain, (r) => r.traffic.netBytes), (v) => ratio(v))}; ` +
        `throughput ${spread(pairRatios(heaps, plain, (r) => r.cost.throughput), (v) => ratio(v, 3))}; ` +
        `p99 ${spread(pairRatios(heaps, plain, (r) => r.cost.p99), (v) => ratio(v, 3))}; ` +
        `CPU per op ${spread(pairRatios(heaps, plain, (r) => r.cost.cpuPerOpMs), (v) => ratio(v, 3))}.`,
      '',
    );
  }
  return lines;
}

function classRows(runs, phase) {
  const out = {};
  for (const name of CLASSES) {
    const pick = (field) => median(runs.map((r) => r[phase].byKind[name]?.[field] ?? 0));
    out[name] = { anonymous: pick('anonymous'), merged: pick('merged'), saved: pick('saved') };
  }
  return out;
}

export function whereTable(results) {
  const lines = [
    '### Where the merged pages are',
    '',
    'Per kind of mapping, summed over the group (medians): anonymous memory, bytes that map a KSM page (smaps `KSM`), and the fair-share saving ' +
      '(profit exact rows). V8 pages are told apart by their chunk header (first words of each 256 KiB-aligned chunk: its size, and the ' +
      'space its owner_ pointer names, V8 11.3 layout); a VMA of adjacent chunks counts as the space of its first; the code range is the one anonymous executable mapping. Inside malloc\'s heap nothing tells which C++ ' +
      'object, or free chunk, a page holds.',
    '',
  ];
  for (const [kind, byLabel] of Object.entries(results)) {
    for (const label of ['plain', 'heaps']) {
      const runs = byLabel[label];
      if (!runs) continue;
      lines.push(`${KINDS[kind]}, ${label}:`, '', '| mapping | anonymous (start-up) | merged | saved | anonymous (after traffic) | merged | saved |', '|---|---|---|---|---|---|---|');
      const start = classRows(runs, 'startup');
      const after = classRows(runs, 'traffic');
      for (const name of CLASSES) {
        if (start[name].anonymous === 0 && after[name].anonymous === 0) continue;
        lines.push(
          `| ${name} | ${mib(start[name].anonymous)} | ${mib(start[name].merged)} | ${mib(start[name].saved)} | ` +
            `${mib(after[name].anonymous)} | ${mib(after[name].merged)} | ${mib(after[name].saved)} |`,
        );
      }
      const pointers = Math.max(...runs.map((r) => r.startup.heapPointers));
      lines.push('', pointers > 1 ? `(V8 chunk headers named ${pointers} different heaps in one worker: the page kinds are a best guess.)` : '', '');
    }
  }
  return lines;
}

export function servingTable(results) {
  const lines = ['### What the serving switch keeps', '', '| group | kind | saved after start-up | after traffic | throughput / plain | p99 / plain |', '|---|---|---|---|---|---|'];
  let any = false;
  for (const [kind, byLabel] of Object.entries(results)) {
    for (const [label, runs] of Object.entries(byLabel)) {
      if (!label.startsWith('heaps')) continue;
      // Each set is compared with its own plain group.
      const plain = (runs[0]?.set ?? 0) === 0 ? byLabel.plain ?? [] : byLabel[`plain (set ${runs[0].set + 1})`] ?? [];
      any = true;
      lines.push(
        `| ${label} | ${kind} | ${spread(share(runs, 'startup'), pct)} | ${spread(share(runs, 'traffic'), pct)} | ` +
          `${spread(pairRatios(runs, plain, (r) => r.cost.throughput), (v) => ratio(v, 3))} | ${spread(pairRatios(runs, plain, (r) => r.cost.p99), (v) => ratio(v, 3))} |`,
      );
    }
  }
  return any ? [...lines, ''] : [];
}

/** The price on the kernel side: KSM pages lost to the traffic per group, and the set-wide cow_ksm and ksmd CPU. */
export function kernelTable(results) {
  const lines = [
    '### The price on the kernel side',
    '',
    'Per group: pages of its workers that map a KSM page (`ksm_merging_pages` summed) after start-up had settled, and right after the ' +
      'traffic (before ksmd had its scans to merge again): the difference is pages the traffic wrote to (a CoW break) or freed. ' +
      'Set-wide (every group of the set and anyone else on the machine, so one figure per set): `cow_ksm` of /proc/vmstat during the ' +
      'traffic window, and ksmd\'s CPU time (utime + stime of its /proc/PID/stat) while start-up settled, during traffic and while it settled again.',
    '',
    '| group | kind | KSM-mapped pages after start-up | right after traffic | lost to traffic |',
    '|---|---|---|---|---|',
  ];
  const sets = [];
  for (const [kind, byLabel] of Object.entries(results)) {
    for (const [label, runs] of Object.entries(byLabel)) {
      if (!runs[0]?.kernel) continue;
      const start = median(runs.map((r) => r.kernel.mergingStartup));
      const after = median(runs.map((r) => r.kernel.mergingAfterTraffic));
      lines.push(
        `| ${label} | ${kind} | ${start.toFixed(0)} (${mib(start * 4096)}) | ${after.toFixed(0)} (${mib(after * 4096)}) | ` +
          `${spread(runs.map((r) => 1 - r.kernel.mergingAfterTraffic / r.kernel.mergingStartup), pct)} |`,
      );
      if (label === 'plain' || label.startsWith('plain (set')) sets.push({ kind, label, runs });
    }
  }
  lines.push('', '| set | kind | cow_ksm during traffic | ksmd CPU: start-up settle | traffic | settle again | ksmd CPU per full scan |', '|---|---|---|---|---|---|---|');
  for (const { kind, label, runs } of sets) {
    const k = runs.map((r) => r.kernel.set);
    const perScan = k.map((x) => (x.startup.ksmdCpuMs + x.traffic.ksmdCpuMs + x.resettle.ksmdCpuMs) / Math.max(1, x.startup.fullScans + x.traffic.fullScans + x.resettle.fullScans));
    lines.push(
      `| ${label === 'plain' ? 1 : label.replace(/^plain \(set (\d+)\)$/, '$1')} | ${kind} | ${spread(k.map((x) => x.traffic.cowKsm), fixed(0))} | ` +
        `${spread(k.map((x) => x.startup.ksmdCpuMs), fixed(0))} ms in ${spread(k.map((x) => x.startup.wallMs / 1000), fixed(1))} s | ` +
        `${spread(k.map((x) => x.traffic.ksmdCpuMs), fixed(0))} ms in ${spread(k.map((x) => x.traffic.wallMs / 1000), fixed(1))} s | ` +
        `${spread(k.map((x) => x.resettle.ksmdCpuMs), fixed(0))} ms in ${spread(k.map((x) => x.resettle.wallMs / 1000), fixed(1))} s | ${spread(perScan, fixed(0))} ms |`,
    );
  }
  return [...lines, ''];
}

function verdict(ok) {
  return ok ? 'met' : 'not met';
}

/** The summary rows: the issue's goal, per group. */
export function summaryRows(results, ctx) {
  const rows = [];
  for (const [kind, byLabel] of Object.entries(results)) {
    const heaps = byLabel.heaps ?? [];
    const plain = byLabel.plain ?? [];
    if (heaps.length === 0 || plain.length === 0) continue;
    const startShare = median(share(heaps, 'startup'));
    const trafficRatio = median(pairRatios(heaps, plain, (r) => r.traffic.netBytes));
    const throughput = median(pairRatios(heaps, plain, (r) => r.cost.throughput));
    const p99 = median(pairRatios(heaps, plain, (r) => r.cost.p99));
    const name = KINDS[kind];
    rows.push(
      {
        figure: `${name}, N=${ctx.n}: saved after start-up, node-ksm/cluster`,
        measured: `${pct(startShare)} of anonymous (${spread(share(heaps, 'startup'), pct)})`,
        comparedWith: `plain enableMerge(): ${pct(median(share(plain, 'startup')))}`,
        ratio: median(pairRatios(heaps, plain, (r) => r.startup.netBytes)),
        target: kind === 'code' ? '>= 40% of anonymous' : '',
        verdict: kind === 'code' ? verdict(startShare >= 0.4) : 'measured',
      },
      {
        figure: `${name}, N=${ctx.n}: saved after divergent traffic`,
        measured: `${pct(median(share(heaps, 'traffic')))} of anonymous (${mib(median(heaps.map((r) => r.traffic.netBytes)))})`,
        comparedWith: `plain enableMerge(): ${pct(median(share(plain, 'traffic')))} (${mib(median(plain.map((r) => r.traffic.netBytes)))})`,
        ratio: trafficRatio,
        target: '>= 2x plain',
        verdict: verdict(trafficRatio >= 2),
      },
      {
        figure: `${name}, N=${ctx.n}: steady-state throughput`,
        measured: `${median(heaps.map((r) => r.cost.throughput)).toFixed(0)} ${heaps[0].cost.unit}`,
        comparedWith: `plain: ${median(plain.map((r) => r.cost.throughput)).toFixed(0)}`,
        ratio: throughput,
        target: '>= 0.95x plain',
        verdict: verdict(throughput >= 0.95),
        notes: `run by run: ${spread(pairRatios(heaps, plain, (r) => r.cost.throughput), (v) => ratio(v, 3))}`,
      },
      {
        figure: `${name}, N=${ctx.n}: p99 latency`,
        measured: `${median(heaps.map((r) => r.cost.p99)).toFixed(2)} ms`,
        comparedWith: `plain: ${median(plain.map((r) => r.cost.p99)).toFixed(2)} ms`,
        ratio: p99,
        target: '<= 1.05x plain',
        verdict: verdict(p99 <= 1.05),
        notes: `run by run: ${spread(pairRatios(heaps, plain, (r) => r.cost.p99), (v) => ratio(v, 3))}`,
      },
    );
  }
  return rows;
}

/** Share merged (smaps KSM / Anonymous) of some kinds of mapping, summed, median over runs. */
function mergedShare(runs, phase, kinds) {
  return median(
    runs.map((r) => {
      let anonymous = 0;
      let merged = 0;
      for (const kind of kinds) {
        anonymous += r[phase].byKind[kind]?.anonymous ?? 0;
        merged += r[phase].byKind[kind]?.merged ?? 0;
      }
      return anonymous > 0 ? merged / anonymous : undefined;
    }).filter((v) => v !== undefined),
  );
}

const V8_DATA = ['v8-old', 'v8-young', 'v8-large', 'v8-read-only'];

/**
 * The wall: what stays unmerged in mergeable-heap groups, and the cost
 * that comes with the mode, from this run's figures. The "why" of each line
 * is what V8 and the kernel do (flags.ts has the V8 side).
 */
export function wallTable(results, startupFrom) {
  const lines = [
    '### The wall: what does not merge, and why',
    '',
    'Share of each kind of mapping that maps a KSM page (smaps `KSM` / `Anonymous`, medians), heaps groups against plain, after start-up → after traffic.',
    '',
    '| group | mapping | plain | heaps | why it stops there |',
    '|---|---|---|---|---|',
  ];
  const why = {
    'v8-young':
      'every scavenge copies the live objects to the other semispace and the next allocations overwrite the pages: each worker writes its own requests\' objects there, so the merged young pages of start-up are broken by the first collections (CoW) and never settle again',
    'v8-old':
      'what start-up promoted stays merged while nobody writes it; traffic promotes each worker\'s own objects (its cache entries) into fresh and partly filled pages, and marking/compaction rewrites mark bits and moves objects: those pages differ',
    'v8-large': 'large objects (TypeScript\'s big arrays and strings) hold data, not layout: they merge in plain workers too',
    'v8-code':
      'small, and (not measured apart) likely because machine code embeds absolute addresses of what it uses, and which functions get optimized, and when, follows each worker\'s traffic',
    'malloc-brk':
      'C++ objects of V8 and Node (nothing in the heap tells which): glibc places them in the order of each process\'s frees and they hold per-process pointers (not measured apart); trimMalloc() gives free pages back, it does not make the rest alike',
  };
  for (const [kind, byLabel] of Object.entries(results)) {
    const heaps = byLabel.heaps ?? [];
    const plain = byLabel.plain ?? [];
    if (heaps.length === 0 || plain.length === 0) continue;
    for (const [name, kinds] of [['V8 heap (all spaces)', V8_DATA], ...Object.keys(why).map((k) => [k, [k]])]) {
      const cellOf = (runs) => `${pct(mergedShare(runs, 'startup', kinds))} → ${pct(mergedShare(runs, 'traffic', kinds))}`;
      lines.push(`| ${KINDS[kind]} | ${name} | ${cellOf(plain)} | ${cellOf(heaps)} | ${why[name] ?? 'sum of the chunks of every V8 space'} |`);
    }
  }
  lines.push('');
  const cost = [];
  for (const [kind, byLabel] of Object.entries(results)) {
    const heaps = byLabel.heaps ?? [];
    const plain = byLabel.plain ?? [];
    if (heaps.length === 0 || plain.length === 0) continue;
    // Runs before the fix counted start-up from the worker script's first line: the mode's preload
    // fell outside it, plain's require of node-ksm inside (0.09x for a 60 ms HTTP start-up).
    const startup =
      startupFrom === 'process'
        ? `start-up CPU ${spread(pairRatios(heaps, plain, (r) => r.startupCpuMs), (v) => ratio(v))} of plain`
        : kind === 'code'
          ? `start-up CPU ${spread(pairRatios(heaps, plain, (r) => r.startupCpuMs), (v) => ratio(v))} of plain (from the worker script's first line; the preload's few ms are left out of 10 s)`
          : 'start-up CPU not comparable in this run (counted from the worker script\'s first line: the preload left out, plain\'s require of node-ksm in)';
    cost.push(
      `- ${KINDS[kind]}: ${startup}; CPU per operation ` +
        `${spread(pairRatios(heaps, plain, (r) => r.cost.cpuPerOpMs), (v) => ratio(v))}; throughput ${spread(pairRatios(heaps, plain, (r) => r.cost.throughput), (v) => ratio(v))} ` +
        `and p99 ${spread(pairRatios(heaps, plain, (r) => r.cost.p99), (v) => ratio(v))} side by side on 2 saturated cores.`,
    );
  }
  lines.push(
    'The price, and where it comes from:',
    '',
    ...cost,
    '- Concurrent recompilation and concurrent/parallel marking cannot come back after start-up (V8 creates the compile dispatcher and ' +
      'the marking worklists at isolate start; switching marking on later crashes the first major GC), so a worker in the mode optimizes ' +
      'and marks on its main thread for life. With every core busy, plain workers also win CPU share through their helper threads: ' +
      'side by side, throughput measures that share as much as the work per request, which CPU per operation isolates.',
    '- `--random-seed` only fixes V8\'s own mmap hints: ASLR still moves the binary, libraries, stacks and malloc\'s brk heap (pointers into ' +
      'them differ between siblings), and a hint the kernel cannot honour (a range already taken) puts a chunk elsewhere.',
    '',
  );
  return lines;
}
