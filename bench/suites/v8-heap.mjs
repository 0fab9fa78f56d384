// 9. Mergeable V8 heaps (node-ksm/cluster): how much of a worker group's
// anonymous memory merges after start-up and after divergent traffic, and
// what it costs, against the same workers with plain enableMerge() and with
// nothing. Two groups: code-heavy TypeScript workers, and a small HTTP
// server in cluster under load on loopback.
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { withKnobs } from '../lib/knobs.mjs';
import { waitFullScans } from '../lib/kernel.mjs';
import { heapSaving, startHeapGroup } from '../lib/heap.mjs';
import { median, retryStopped } from '../lib/stats.mjs';
import { issueTable, mainTable, servingTable, summaryRows, whereTable } from '../lib/heap-report.mjs';
import { codeTraffic, httpLoad } from '../lib/heap-load.mjs';

export const id = 'v8-heap';
export const title = 'Mergeable V8 heaps (node-ksm/cluster)';

/** The issue's first experiment, flags as it gave them (SEED: one random seed per group). */
export const ISSUE_FLAGS = [
  [],
  ['--random-seed=SEED'],
  ['--single-threaded'],
  ['--random-seed=SEED', '--single-threaded-gc'],
  ['--random-seed=SEED', '--no-concurrent-recompilation'],
  ['--random-seed=SEED', '--no-concurrent-recompilation', '--single-threaded-gc'],
  ['--random-seed=SEED', '--single-threaded'],
];

/** The groups compared side by side: label -> spec for workers/heap-primary.cjs. */
function groups(full, smoke) {
  const out = smoke
    ? { plain: { mode: 'plain' }, heaps: { mode: 'mergeable-heaps', heaps: {} } }
    : { nothing: { mode: 'nothing' }, plain: { mode: 'plain' }, heaps: { mode: 'mergeable-heaps', heaps: {} } };
  if (full) {
    out['heaps, serving concurrent'] = { mode: 'mergeable-heaps', heaps: { serving: 'concurrent' } };
    out['heaps, serving deterministic'] = { mode: 'mergeable-heaps', heaps: { serving: 'deterministic' } };
    out['heaps, no malloc trim'] = { mode: 'mergeable-heaps', heaps: { trimMalloc: false } };
  }
  return out;
}

const SCANS = 4;

async function settle(ctx, spec) {
  // Nothing mergeable in a `nothing` group: ksmd may sleep, full_scans stand still.
  if (spec.mode === 'nothing') return;
  if (!(await waitFullScans(SCANS, ctx.timeoutMs))) throw new Error(`v8-heap: ${SCANS} full scans did not complete in ${ctx.timeoutMs} ms`);
}

/** One group: start, settle, measure; traffic; settle, measure again. */
async function runGroup(ctx, ksm, kind, spec, load) {
  const group = await startHeapGroup({ kind, n: ctx.n, work: kind === 'code' ? ctx.codeWork : undefined, ...spec }, { timeoutMs: ctx.timeoutMs });
  try {
    await settle(ctx, spec);
    const startup = await heapSaving(ksm, group.pids);
    const cost = kind === 'code' ? await codeTraffic(group, load) : await httpLoad(group, load);
    await settle(ctx, spec);
    const traffic = await heapSaving(ksm, group.pids);
    return {
      startup,
      traffic,
      cost,
      startupMs: median(group.workers.map((w) => w.startupMs)),
      startupCpuMs: median(group.workers.map((w) => w.startupCpuMs)),
      sameRandom: new Set(group.workers.map((w) => w.random)).size === 1,
    };
  } finally {
    await group.stop();
  }
}

/** The issue's table: transpile workers, raw flags, saving after four full scans. */
async function reproduceIssue(ctx, ksm, repeats) {
  const rows = [];
  // --smoke: the first and the last row only.
  for (const flags of ctx.smoke ? [ISSUE_FLAGS[0], ISSUE_FLAGS.at(-1)] : ISSUE_FLAGS) {
    const runs = [];
    for (let i = 0; i < repeats; i++) {
      runs.push(
        await retryStopped(async () => {
          const seed = String(1 + Math.floor(Math.random() * 2 ** 30));
          const spec = { mode: 'flags', flags: flags.map((f) => f.replace('SEED', seed)), work: 'transpile' };
          const group = await startHeapGroup({ kind: 'code', n: ctx.n, ...spec }, { timeoutMs: ctx.timeoutMs });
          try {
            await settle(ctx, spec);
            return { saving: await heapSaving(ksm, group.pids), sameRandom: new Set(group.workers.map((w) => w.random)).size === 1 };
          } finally {
            await group.stop();
          }
        }),
      );
    }
    rows.push({ flags, runs });
    ctx.log(`v8-heap issue table: ${flags.join(' ') || '(none)'}: ${runs.map((r) => `${(r.saving.share * 100).toFixed(1)}%`).join(', ')}`);
  }
  return rows;
}

export async function run(ctx) {
  const require = createRequire(import.meta.url);
  const ksm = require(path.join(ctx.root, 'dist', 'index.js'));
  const full = !ctx.quick && !ctx.smoke;
  const local = {
    ...ctx,
    n: ctx.smoke ? 2 : 4,
    codeWork: ctx.smoke ? 'transpile' : 'typecheck',
    repeats: ctx.smoke ? 1 : ctx.quick ? 2 : 3,
    variantRepeats: 2,
    codeTrafficMs: ctx.smoke ? 1000 : ctx.quick ? 4000 : 10_000,
    httpWarmupS: ctx.smoke ? 0.5 : 5,
    httpLoadS: ctx.smoke ? 2 : ctx.quick ? 8 : 15,
    timeoutMs: Math.max(ctx.timeoutMs, 300_000),
  };
  // The issue's knobs: 5000 pages every 20 ms, smart_scan off.
  return withKnobs({ pages_to_scan: 5000, sleep_millisecs: 20, smart_scan: 0 }, async () => {
    const issue = await reproduceIssue(local, ksm, ctx.smoke ? 1 : ctx.quick ? 1 : 2);
    const results = { code: {}, http: {} };
    const labels = Object.entries(groups(full, ctx.smoke));
    for (const kind of ['code', 'http']) {
      const load = kind === 'code' ? { ms: local.codeTrafficMs } : { warmupS: local.httpWarmupS, durationS: local.httpLoadS };
      for (let i = 0; i < local.repeats; i++) {
        // Rotate the order, so drift on a shared machine hits every group alike.
        const order = labels.map((_, k) => labels[(k + i) % labels.length]);
        for (const [label, spec] of order) {
          const isVariant = !['nothing', 'plain', 'heaps'].includes(label);
          if (isVariant && i >= local.variantRepeats) continue;
          const result = await retryStopped(() => runGroup(local, ksm, kind, spec, load));
          (results[kind][label] ??= []).push(result);
          ctx.log(
            `v8-heap ${kind} ${label}: start-up ${(result.startup.share * 100).toFixed(1)}%, after traffic ${(result.traffic.share * 100).toFixed(1)}%, ` +
              `${result.cost.throughput.toFixed(1)} ${result.cost.unit}, p99 ${result.cost.p99.toFixed(2)} ms`,
          );
        }
      }
    }
    return {
      rows: summaryRows(results, local),
      command: `npm run bench -- --only ${id}`,
      method: [
        `${local.n} sibling workers per group, one primary process per group (so each mergeable-heaps group has its own seed), groups run one at a time ` +
          'in rotating order. KSM at pages_to_scan 5000, sleep_millisecs 20, smart_scan 0 (the issue\'s settings). Saving: `profit(pid, { exact: true })` ' +
          'summed over the workers (fair shares, zero pages, less rmap_item metadata), as a share of the workers\' anonymous memory (smaps `Anonymous`), ' +
          `after ${SCANS} full scans; "group only" counts a KSM page mapped k times by the group as k-1 pages (nothing outside the group moves it).`,
        `Code-heavy group: each worker requires typescript, transpiles a fixed snippet${local.codeWork === 'typecheck' ? ' and type-checks it against lib.d.ts (ts.createProgram)' : ''}; traffic: ` +
          `${local.codeTrafficMs / 1000} s of transpiling snippets named after random keys (crypto) into a 5,000-entry cache. ` +
          `HTTP group: node:cluster (or node-ksm/cluster) with ${local.n} workers serving JSON items from a 5,000-entry cache; autocannon on loopback, ` +
          `32 connections, random ids, ${local.httpWarmupS} s warm-up then ${local.httpLoadS} s measured. GC pauses: perf_hooks \`gc\` entries in each worker; ` +
          'CPU: process.cpuUsage() of the workers over the measured window.',
      ],
      findings: [...issueTable(issue), ...mainTable(results, local.n), ...whereTable(results), ...servingTable(results)],
      raw: { issue, results },
    };
  });
}
