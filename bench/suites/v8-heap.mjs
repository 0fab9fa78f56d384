// 9. Mergeable V8 heaps (node-ksm/cluster): how much of a worker group's
// anonymous memory merges after start-up and after divergent traffic, and
// what it costs, against the same workers with plain enableMerge() and with
// nothing. Two groups: code-heavy TypeScript workers, and a small HTTP
// server in cluster under load on loopback.
import { createRequire } from 'node:module';
import * as path from 'node:path';

import { withKnobs } from '../lib/knobs.mjs';
import { costDelta, kernelCost, ksmStat, waitFullScans } from '../lib/kernel.mjs';
import { heapSaving, startHeapGroup } from '../lib/heap.mjs';
import { median, retryStopped } from '../lib/stats.mjs';
import { issueTable, kernelTable, mainTable, servingTable, summaryRows, wallTable, whereTable } from '../lib/heap-report.mjs';
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

/** The groups compared side by side (label -> spec for workers/heap-primary.cjs), in sets that run at once. */
function sets(full, smoke) {
  const plain = { mode: 'plain' };
  const heaps = { mode: 'mergeable-heaps', heaps: {} };
  if (smoke) return [{ plain, heaps }];
  const main = { nothing: { mode: 'nothing' }, plain, heaps };
  if (!full) return [main];
  return [
    main,
    {
      plain,
      heaps,
      'heaps, serving concurrent': { mode: 'mergeable-heaps', heaps: { serving: 'concurrent' } },
      'heaps, serving deterministic': { mode: 'mergeable-heaps', heaps: { serving: 'deterministic' } },
      'heaps, no malloc trim': { mode: 'mergeable-heaps', heaps: { trimMalloc: false } },
    },
  ];
}

const SCANS = 4;

async function settle(ctx) {
  if (!(await waitFullScans(SCANS, ctx.timeoutMs))) throw new Error(`v8-heap: ${SCANS} full scans did not complete in ${ctx.timeoutMs} ms`);
}

/**
 * One set of groups, side by side: all start at once, settle, are measured;
 * get their traffic at once (every group under the same load on the
 * machine); settle, and are measured again.
 */
async function runSet(ctx, ksm, kind, set, load) {
  const labels = Object.keys(set);
  const before = kernelCost();
  const started = await Promise.allSettled(
    labels.map((label) => startHeapGroup({ kind, n: ctx.n, work: kind === 'code' ? ctx.codeWork : undefined, ...set[label] }, { timeoutMs: ctx.timeoutMs })),
  );
  const groups = started.filter((s) => s.status === 'fulfilled').map((s) => s.value);
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    await settle(ctx);
    const settled = kernelCost();
    const startup = [];
    for (const group of groups) startup.push(await heapSaving(ksm, group.pids));
    const mergingStartup = groups.map((group) => merging(group.pids));
    const loaded = kernelCost();
    const costs = await Promise.all(groups.map((group) => (kind === 'code' ? codeTraffic(group, load) : httpLoad(group, load))));
    const trafficEnd = kernelCost();
    const mergingAfterTraffic = groups.map((group) => merging(group.pids));
    await settle(ctx);
    const setCost = { startup: costDelta(before, settled), traffic: costDelta(loaded, trafficEnd), resettle: costDelta(trafficEnd, kernelCost()) };
    const out = {};
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i];
      out[labels[i]] = {
        startup: startup[i],
        traffic: await heapSaving(ksm, group.pids),
        cost: costs[i],
        startupMs: median(group.workers.map((w) => w.startupMs)),
        startupCpuMs: median(group.workers.map((w) => w.startupCpuMs)),
        sameRandom: new Set(group.workers.map((w) => w.random)).size === 1,
        kernel: { mergingStartup: mergingStartup[i], mergingAfterTraffic: mergingAfterTraffic[i], set: setCost },
      };
    }
    return out;
  } finally {
    await Promise.all(groups.map((group) => group.stop()));
  }
}

/** Pages of the group's workers that map a KSM page now (ksm_stat). */
function merging(pids) {
  return pids.reduce((sum, pid) => sum + (Number(ksmStat(pid).ksm_merging_pages) || 0), 0);
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
            await settle(ctx);
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

/** The tables of one run, from its raw figures (also what `bench/run.mjs --render` redraws). */
export function findings(raw) {
  const { issue, results, n = 4 } = raw;
  return [...issueTable(issue), ...mainTable(results, n), ...whereTable(results), ...kernelTable(results), ...wallTable(results, raw.startupFrom), ...servingTable(results)];
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
    warmupS: ctx.smoke ? 0.5 : 5,
    httpLoadS: ctx.smoke ? 2 : ctx.quick ? 8 : 15,
    timeoutMs: Math.max(ctx.timeoutMs, 300_000),
  };
  // The issue's knobs: 5000 pages every 20 ms, smart_scan off.
  return withKnobs({ pages_to_scan: 5000, sleep_millisecs: 20, smart_scan: 0 }, async () => {
    const issue = await reproduceIssue(local, ksm, ctx.smoke ? 1 : ctx.quick ? 1 : 2);
    const results = { code: {}, http: {} };
    for (const kind of ['code', 'http']) {
      const load = kind === 'code' ? { warmupMs: local.warmupS * 1000, ms: local.codeTrafficMs } : { warmupS: local.warmupS, durationS: local.httpLoadS };
      for (const [index, set] of sets(full, ctx.smoke).entries()) {
        const repeats = index === 0 ? local.repeats : local.variantRepeats;
        for (let i = 0; i < repeats; i++) {
          const result = await retryStopped(() => runSet(local, ksm, kind, set, load));
          for (const [label, run] of Object.entries(result)) {
            // The set's own plain run is what its variants are compared with.
            const key = index === 0 || label.startsWith('heaps, ') ? label : `${label} (set ${index + 1})`;
            (results[kind][key] ??= []).push({ ...run, set: index });
            ctx.log(
              `v8-heap ${kind} ${key}: start-up ${(run.startup.share * 100).toFixed(1)}%, after traffic ${(run.traffic.share * 100).toFixed(1)}%, ` +
                `${run.cost.throughput.toFixed(1)} ${run.cost.unit}, p99 ${run.cost.p99.toFixed(2)} ms, CPU/op ${run.cost.cpuPerOpMs.toFixed(3)} ms`,
            );
          }
        }
      }
    }
    return {
      rows: summaryRows(results, local),
      command: `npm run bench -- --only ${id}`,
      method: [
        `${local.n} sibling workers per group, one primary process per group (so each mergeable-heaps group has its own seed); the groups of a set ` +
          'run side by side (started together, loaded together), so drift on this shared machine hits them alike; ratios are taken within a set, run by run. KSM at pages_to_scan 5000, sleep_millisecs 20, smart_scan 0 (the issue\'s settings). Saving: `profit(pid, { exact: true })` ' +
          'summed over the workers (fair shares, zero pages, less rmap_item metadata), as a share of the workers\' anonymous memory (smaps `Anonymous`), ' +
          `after ${SCANS} full scans; "group only" counts a KSM page mapped k times by the group as k-1 pages (nothing outside the group moves it).`,
        `Code-heavy group: each worker requires typescript, transpiles a fixed snippet${local.codeWork === 'typecheck' ? ' and type-checks it against lib.d.ts (ts.createProgram)' : ''}; traffic: ` +
          `${local.warmupS} s warm-up then ${local.codeTrafficMs / 1000} s measured of transpiling snippets of 1-8 functions named after random keys of 2-10 bytes (crypto) into a 5,000-entry cache. ` +
          `HTTP group: node:cluster (or node-ksm/cluster) with ${local.n} workers serving JSON items (1-16 tags, by a hash of the id) from a 5,000-entry ` +
          `cache; one autocannon process per group on loopback, 32 connections, a new id per request, ${local.warmupS} s warm-up then ${local.httpLoadS} s measured. GC pauses: perf_hooks \`gc\` entries in each worker; ` +
          'CPU: process.cpuUsage() of the workers over the measured window.',
      ],
      findings: findings({ issue, results, n: local.n }),
      raw: { issue, results, n: local.n, startupFrom: 'process' },
    };
  });
}
