// 6. THP: the same merge workload with THP `always` against `madvise`, with
// and without MADV_NOHUGEPAGE on the buffers, so the package's default is
// chosen by data. THP decides at fault time, so the `always` window covers
// only starting the workers and writing their data; the mode is restored
// before ksmd's work is measured, and other people's processes see
// `always` for about a second.
import { groupSaving, smapsRange, sysfsNumber } from '../lib/kernel.mjs';
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
      notes: `settled: ${c.spread}, ${c.knobs}; huge pages in the buffers when written ${mib(c.anonHuge)}, after merging ${mib(c.anonHugeAfter)}; ` +
        `writing the buffer (faults included) ${secs(c.fillMs, 3)} per worker; ratio = time to settle against ${name(base)}`,
    };
  });
  const always = s[2];
  const alwaysNo = s[3];
  const slower = always.settled / alwaysNo.settled;
  const lessProfit = always.profit / alwaysNo.profit;
  const fillGain = alwaysNo.fillMs / always.fillMs;
  const hugeSeen = always.anonHuge > 0;
  let recommendation;
  if (!hugeSeen) {
    recommendation = 'THP `always` gave the buffers no huge pages here, so the data cannot choose: keep the default (no THP advice).';
  } else if (slower > 1.1 || lessProfit < 0.99) {
    recommendation = `Under THP \`always\`, huge pages in mergeable buffers made merging ${fmt(slower, 2)}x slower to settle ` +
      `and left ${pct(lessProfit)} of the profit, against ${fmt(fillGain, 2)}x faster writing: mergeable buffers should be advised ` +
      'MADV_NOHUGEPAGE (ksmd must split every huge page before its 4 KiB pages can merge).';
  } else {
    recommendation = `Under THP \`always\`, huge pages in mergeable buffers settled ${fmt(slower, 2)}x as long and kept ${pct(lessProfit)} ` +
      `of the profit against MADV_NOHUGEPAGE, and wrote ${fmt(fillGain, 2)}x as fast: no advice needed, ksmd splits the huge pages ` +
      'at little cost; the package leaves THP alone.';
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
