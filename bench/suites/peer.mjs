// 4. The peer: the same workload with Python's mmap.madvise(MADV_MERGEABLE).
import { median, mib, pct, ratio, retryStopped, secs, spread, MiB } from '../lib/stats.mjs';
import { knobsDuring } from '../lib/workers.mjs';
import { measureGroup } from './efficiency.mjs';

export const id = 'peer';
export const title = 'The peer: Python mmap.madvise(MADV_MERGEABLE)';

/** A gap counts only beyond the runs' own spread: ksmd does the work on both sides. */
function peerVerdict(runs, r) {
  if (r <= 1.1) return 'met';
  const node = runs.node.map((x) => x.track.settled).filter((v) => typeof v === 'number');
  const python = runs.python.map((x) => x.track.settled).filter((v) => typeof v === 'number');
  if (Math.min(...node) <= Math.max(...python)) return `${ratio(r)} on the medians; the runs' ranges overlap, so not distinguishable from noise here`;
  return `slower by ${ratio(r)}`;
}

export async function run(ctx) {
  const n = ctx.smoke ? 2 : ctx.quick ? 2 : 4;
  const sizeMiB = ctx.smoke ? 2 : ctx.quick ? 16 : 64;
  const repeats = ctx.smoke ? 1 : 3;
  const bytes = sizeMiB * MiB;
  const ideal = (n - 1) * bytes;
  const runs = { node: [], python: [] };
  for (let i = 0; i < repeats; i++) {
    // Alternate who goes first, so drift in ksmd's load hits both alike.
    const order = i % 2 ? ['python', 'node'] : ['node', 'python'];
    for (const kind of order) {
      const spec = kind === 'node' ? { mode: 'alloc' } : {};
      runs[kind].push(await retryStopped(() => measureGroup(kind, n, bytes, spec, { timeoutMs: ctx.timeoutMs, seed: ctx.seed() })));
    }
  }
  const sum = (kind) => ({
    profit: median(runs[kind].map((r) => r.exact.profitBytes)),
    settled: median(runs[kind].map((r) => r.track.settled)),
    fillMs: median(runs[kind].map((r) => r.fillMs)),
  });
  const node = sum('node');
  const python = sum('python');
  ctx.log(`peer: node profit ${pct(node.profit / ideal)} settled ${secs(node.settled)}; python ${pct(python.profit / ideal)} settled ${secs(python.settled)}`);
  const command = `npm run bench -- --only ${id}`;
  return {
    command,
    rows: [
      {
        figure: `N=${n} x ${sizeMiB} MiB: group profit, node-ksm allocMergeable`,
        measured: `${mib(node.profit)} (${pct(node.profit / ideal)} of (N-1)xS)`,
        comparedWith: `Python mmap + madvise: ${mib(python.profit)} (${pct(python.profit / ideal)})`,
        ratio: node.profit / python.profit,
        target: '>= 1x',
        verdict: node.profit / python.profit >= 0.99 ? 'met' : `missed by ${pct(1 - node.profit / python.profit)}`,
      },
      {
        figure: `N=${n} x ${sizeMiB} MiB: data written -> settled, node-ksm`,
        measured: secs(node.settled),
        comparedWith: `Python: ${secs(python.settled)}`,
        ratio: node.settled / python.settled,
        target: '~1x (ksmd does the work)',
        verdict: peerVerdict(runs, node.settled / python.settled),
        notes: `node ${spread(runs.node.map((r) => r.track.settled))}, Python ${spread(runs.python.map((r) => r.track.settled))}; ` +
          `${knobsDuring([...runs.node, ...runs.python].map((r) => r.track))}; filling the buffer (first touch included): node ${secs(node.fillMs, 3)}, Python ${secs(python.fillMs, 3)} (median per worker); ` +
          'ratio = node / Python time (below 1: node-ksm settles sooner)',
      },
    ],
    method: [
      `Both sides: N=${n} processes, ${sizeMiB} MiB each, the same page pattern (bench/workers/holder.cjs and holder.py), ` +
        'private anonymous memory advised MADV_MERGEABLE before it is written, medians of ' +
        `${repeats} alternating runs at the bench baseline knobs. Savings are exact from the group's page tables.`,
    ],
  };
}
