// 6. THP: the same merge workload with THP `always` against `madvise`, with
// and without MADV_NOHUGEPAGE on the buffers, so the package's default is
// chosen by data. THP decides at fault time, so the `always` window covers
// only starting the workers and writing their data; the mode is restored
// before ksmd's work is measured, and other people's processes see
// `always` for about a second.
import { groupSaving, smapsRange } from '../lib/kernel.mjs';
import { THP, readChoice, withThp } from '../lib/knobs.mjs';
import { MiB, fmt, median, mib, pct, retryStopped, secs, spread } from '../lib/stats.mjs';
import { knobsDuring, startGroup, trackMerge } from '../lib/workers.mjs';

export const id = 'thp';
export const title = 'Transparent huge pages';

async function measure(ctx, thp, noHugepage, n, bytes) {
  const spec = { mode: 'alloc', size: bytes, seed: ctx.seed(), noHugepage };
  const group = await withThp(thp, () => startGroup('node', n, spec));
  try {
    // Huge pages in the buffers as written (ksmd may already be splitting).
    const anonHuge = group.workers.reduce((sum, w) => sum + smapsRange(w.pid, w.start, w.end).anonHuge, 0);
    const track = await trackMerge(group, { timeoutMs: ctx.timeoutMs });
    const exact = groupSaving(group.workers.map((w) => ({ pid: w.pid, start: w.start, end: w.end })));
    const anonHugeAfter = group.workers.reduce((sum, w) => sum + smapsRange(w.pid, w.start, w.end).anonHuge, 0);
    return { anonHuge, anonHugeAfter, track, exact, fillMs: median(group.workers.map((w) => w.fillMs)) };
  } finally {
    await group.stop();
  }
}

export async function run(ctx) {
  const command = `npm run bench -- --only ${id}`;
  if (readChoice(THP) === undefined) {
    return { command, rows: [{ figure: 'THP', measured: 'no THP on this kernel', verdict: 'skipped' }] };
  }
  if (ctx.smoke) {
    // No THP window in a smoke run: the current mode only.
    const r = await retryStopped(() => measure(ctx, readChoice(THP), true, 2, 4 * MiB));
    return { command, rows: [{ figure: `THP ${readChoice(THP)} + MADV_NOHUGEPAGE, 2 x 4 MiB (smoke)`, measured: `${mib(r.exact.profitBytes)} saved`, verdict: 'ran' }] };
  }
  const n = ctx.quick ? 2 : 4;
  const sizeMiB = ctx.quick ? 16 : 64;
  const repeats = ctx.quick ? 1 : 3;
  const bytes = sizeMiB * MiB;
  const ideal = (n - 1) * bytes;
  const cases = [
    { thp: 'madvise', noHugepage: false },
    { thp: 'madvise', noHugepage: true },
    { thp: 'always', noHugepage: false },
    { thp: 'always', noHugepage: true },
  ];
  const results = new Map();
  for (let i = 0; i < repeats; i++) {
    for (const c of cases) {
      const key = `${c.thp}/${c.noHugepage}`;
      if (!results.has(key)) results.set(key, []);
      results.get(key).push(await retryStopped(() => measure(ctx, c.thp, c.noHugepage, n, bytes)));
    }
  }
  const summary = (c) => {
    const list = results.get(`${c.thp}/${c.noHugepage}`);
    return {
      ...c,
      anonHuge: median(list.map((r) => r.anonHuge)),
      anonHugeAfter: median(list.map((r) => r.anonHugeAfter)),
      settled: median(list.map((r) => r.track.settled)),
      profit: median(list.map((r) => r.exact.profitBytes)),
      fillMs: median(list.map((r) => r.fillMs)),
      timedOut: list.filter((r) => r.track.timedOut).length,
      spread: spread(list.map((r) => r.track.settled)),
      settledAll: list.map((r) => r.track.settled).filter((v) => typeof v === 'number'),
      knobs: knobsDuring(list.map((r) => r.track)),
    };
  };
  const s = cases.map(summary);
  const base = s[0]; // madvise, no advice: the machine's default and the package's today
  const name = (c) => `THP ${c.thp}${c.noHugepage ? ' + MADV_NOHUGEPAGE' : ', no advice'}`;
  const rows = s.map((c) => {
    ctx.log(`thp ${name(c)}: huge ${mib(c.anonHuge)} -> ${mib(c.anonHugeAfter)}, settled ${secs(c.settled)}, profit ${pct(c.profit / ideal)}, fill ${secs(c.fillMs, 3)}`);
    return {
      figure: `N=${n} x ${sizeMiB} MiB allocMergeable, ${name(c)}: data written -> settled`,
      measured: `${secs(c.settled)}, profit ${pct(c.profit / ideal)}`,
      comparedWith: c === base ? 'itself (the machine default, no advice)' : `${name(base)}: ${secs(base.settled)}, ${pct(base.profit / ideal)}`,
      ratio: c === base ? undefined : c.settled / base.settled,
      target: '',
      verdict: c.timedOut ? `${c.timedOut} timed out` : 'measured',
      notes: `${c.spread}, ${c.knobs}; huge pages in the buffers when written ${mib(c.anonHuge)}, after merging ${mib(c.anonHugeAfter)}; ` +
        `writing the buffer (faults included) ${secs(c.fillMs, 3)} per worker; ratio = time to settle against ${name(base)}`,
    };
  });
  const always = s[2];
  const alwaysNo = s[3];
  const slower = always.settled / alwaysNo.settled;
  const lessProfit = always.profit / alwaysNo.profit;
  const hugeSeen = always.anonHuge > 0;
  // Writing: how long filling the buffer took with huge pages, against without.
  const writing = always.fillMs / alwaysNo.fillMs;
  const writingText = writing >= 1 ? `writing the data took ${fmt(writing, 2)}x as long` : `writing the data took ${fmt(writing, 2)}x as long (faster)`;
  // Differences in time to settle count only beyond the runs' own spread.
  const overlap = (x, y) => Math.max(...x) >= Math.min(...y) && Math.max(...y) >= Math.min(...x);
  const settleSame = overlap(always.settledAll, alwaysNo.settledAll);
  const facts = `Under THP \`always\`, huge pages in mergeable buffers kept ${pct(lessProfit)} of the profit, took ${fmt(slower, 2)}x as long ` +
    `to settle (${settleSame ? 'within the runs\' spread' : 'beyond the runs\' spread'}) and ${writingText}, against the same buffers ` +
    `with MADV_NOHUGEPAGE; huge pages left after merging: ${mib(always.anonHugeAfter)} of ${mib(always.anonHuge)}.`;
  let recommendation;
  if (!hugeSeen) {
    recommendation = 'THP `always` gave the buffers no huge pages here, so the data cannot choose: keep the default (no THP advice).';
  } else if (lessProfit < 0.99 || (!settleSame && slower > 1) || (settleSame && writing > 1.1)) {
    recommendation = `${facts} Advise mergeable buffers MADV_NOHUGEPAGE: ksmd splits every huge page before its 4 KiB pages ` +
      'can merge, so they buy nothing that lasts and cost at first touch. Under `madvise` (the common default) allocMergeable ' +
      'gets no huge pages either way.';
  } else {
    recommendation = `${facts} No advice needed: the package can leave THP alone.`;
  }
  ctx.log(`thp recommendation: ${recommendation}`);
  return {
    rows,
    command,
    recommendation,
    findings: [`**Recommendation:** ${recommendation}`],
    method: [
      `N=${n} Node workers, ${sizeMiB} MiB each in allocMergeable Buffers (with MADV_NOHUGEPAGE added through the addon where stated), ` +
        `medians of ${repeats}. /sys/kernel/mm/transparent_hugepage/enabled is set only while the workers start and write their data ` +
        '(THP is decided at fault time) and restored before merging is measured; `madvise` with no advice gets no huge pages, as ' +
        'allocMergeable never asks for them.',
    ],
  };
}
