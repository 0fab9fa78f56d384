// 1. Merge efficiency: N workers holding the same S MiB in allocMergeable
// Buffers. What the group saves, as a fraction of (N-1) x S, against the
// kernel's own limit: (N-1) x S less 64 B of rmap metadata per scanned page.
import { PAGE, RMAP_ITEM_BYTES, groupSaving, sysfsNumber } from '../lib/kernel.mjs';
import { MiB, median, mib, pct, repeat, secs, spread } from '../lib/stats.mjs';
import { knobsDuring, startGroup, trackMerge } from '../lib/workers.mjs';

export const id = 'efficiency';
export const title = 'Merge efficiency';

/** (N-1) x S less the rmap_items of N x S scanned pages: what KSM can save at best. */
export function kernelLimit(n, bytes) {
  return (n - 1) * bytes - n * (bytes / PAGE) * RMAP_ITEM_BYTES;
}

/** One group: start, settle, measure exactly from the page tables, stop. */
export async function measureGroup(kind, n, bytes, spec, { timeoutMs, seed }) {
  const profitBefore = sysfsNumber('general_profit');
  const group = await startGroup(kind, n, { size: bytes, seed, ...spec });
  try {
    const track = await trackMerge(group, { timeoutMs });
    const exact = groupSaving(group.workers.map((w) => ({ pid: w.pid, start: w.start, end: w.end })));
    const generalProfitDelta = sysfsNumber('general_profit') - profitBefore;
    return { track, exact, generalProfitDelta, fillMs: median(group.workers.map((w) => w.fillMs)) };
  } finally {
    await group.stop();
  }
}

export async function run(ctx) {
  const matrix = ctx.smoke
    ? { ns: [2], sizes: [2] }
    : ctx.quick
      ? { ns: [2, 4], sizes: [16] }
      : { ns: [2, 4, 8], sizes: [64, 256] };
  const repeats = ctx.smoke ? 1 : ctx.quick ? 2 : 3;
  const rows = [];
  for (const sizeMiB of matrix.sizes) {
    for (const n of matrix.ns) {
      const bytes = sizeMiB * MiB;
      const ideal = (n - 1) * bytes;
      const limit = kernelLimit(n, bytes);
      const runs = await repeat(repeats, () =>
        measureGroup('node', n, bytes, { mode: 'alloc' }, { timeoutMs: ctx.timeoutMs, seed: ctx.seed() }),
      );
      const profit = median(runs.map((r) => r.exact.profitBytes));
      const general = median(runs.map((r) => r.generalProfitDelta));
      const settled = median(runs.map((r) => r.track.settled));
      const timedOut = runs.filter((r) => r.track.timedOut).length;
      const target = n === 4 ? '>= 97% of (N-1)xS' : 'at the kernel limit';
      const met = n === 4 ? profit / ideal >= 0.97 : profit / limit >= 0.995;
      ctx.log(`efficiency N=${n} S=${sizeMiB} MiB: profit ${pct(profit / ideal)} (limit ${pct(limit / ideal)}), general_profit delta ${pct(general / ideal)}, settled ${secs(settled)}`);
      rows.push({
        figure: `N=${n} x ${sizeMiB} MiB allocMergeable: group profit / ((N-1) x S)`,
        measured: `${pct(profit / ideal)} (${mib(profit)})`,
        comparedWith: `kernel limit ${pct(limit / ideal)} (${mib(limit)}: 64 B rmap_item per page)`,
        ratio: profit / limit,
        target,
        verdict: met ? 'met' : `missed by ${pct(Math.max(0, (n === 4 ? 0.97 : limit / ideal) - profit / ideal), 2)}`,
        notes: `general_profit moved ${pct(general / ideal)} of (N-1)xS (global counter: moved by other KSM users too); ` +
          `settled ${secs(settled)} after the data was written (${spread(runs.map((r) => r.track.settled))}; ${knobsDuring(runs.map((r) => r.track))}); ` +
          `profit ${spread(runs.map((r) => r.exact.profitBytes / ideal), (v) => pct(v, 2))}` +
          (timedOut ? `; ${timedOut}/${repeats} runs timed out` : ''),
        raw: runs,
      });
    }
  }
  return {
    rows,
    command: `npm run bench -- --only ${id}`,
    method: [
      `N Node workers (bench/workers/holder.cjs) each fill S MiB of allocMergeable memory with the same bytes (every page ` +
        `different inside a worker), medians of ${repeats} runs at the bench baseline knobs. The profit is the kernel's own ` +
        'general_profit formula restricted to the group and read from its page tables: for every KSM page the group maps ' +
        'k times, k-1 pages saved (pagemap + kpageflags), less 64 B per rmap_item of the group (ksm_stat). The limit is what ' +
        'that formula gives when every page merges: (N-1) x S - N x S/4096 x 64 B, i.e. 1 - N/(64(N-1)) of (N-1) x S: ' +
        '96.9% at N=2, 97.9% at N=4, 98.2% at N=8. The 97% target is for N=4; for N=2 the limit itself is under 97%, so ' +
        'those rows are judged against the limit.',
    ],
  };
}
