/**
 * node-ksm/cluster: a drop-in for node:cluster whose workers' V8 heaps
 * merge. The API and its argument checks; then real cluster apps (test/
 * fixtures/cluster-app.cjs): what each worker's randomness is, what siblings
 * share and two primaries do not, read from the workers' own memory and
 * /proc, and the saving against plain enableMerge() side by side.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { FIXTURES, ROOT, rawKsmStat, requireKsm, runNode, startFixture, waitFullScans, type Holder } from './helpers/ksm.js';
import { runCli } from './helpers/cli.js';
import { v8ChunkStarts, v8HeapKsm, v8StringHashes, v8SymbolHashes, type V8HeapKsm } from './helpers/v8-memory.js';
import type { StatusJson } from '../lib/cli/json.js';

const requireCjs = createRequire(path.join(ROOT, 'package.json'));
type Cluster = typeof import('../lib/cluster/index.js').default;
const cluster = requireCjs('node-ksm/cluster') as Cluster;
const nodeCluster = requireCjs('node:cluster') as Cluster;

interface App extends Holder {
  ready: { primary: number; workers: Array<{ pid: number }>; warnings: Array<{ code: string; message: string }> };
  pids: number[];
  ask<T>(cmd: string, extra?: Record<string, unknown>): Promise<Array<T & { pid: number }>>;
}

const apps: App[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.kill()));
});

async function startApp(mode: 'heaps' | 'plain', options: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Promise<App> {
  // Plain node even in the sanitized run: the workers' heap layout is what is
  // under test, and a sanitized node's allocator and reservations are ASan's.
  const holder = await startFixture('cluster-app.cjs', [mode, JSON.stringify({ workers: 2, ...options })], env, { sanitized: false });
  const ready = holder.ready as App['ready'];
  const app: App = {
    ...holder,
    ready,
    pids: ready.workers.map((w) => w.pid),
    async ask<T>(cmd: string, extra: Record<string, unknown> = {}) {
      const reply = await holder.send<{ workers: Array<T & { pid: number }> }>({ cmd, ...extra });
      return reply.workers;
    },
    async kill() {
      // The primary's workers go with it (cluster kills them on its exit).
      for (const pid of ready.workers.map((w) => w.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await holder.kill();
    },
  };
  apps.push(app);
  return app;
}

describe('node-ksm/cluster: the module', () => {
  it('is node:cluster, with the mode in setupPrimary()/fork() and its extras, from CommonJS and ESM', async () => {
    expect(cluster.isPrimary).toBe(true);
    expect(cluster.workers).toBe(nodeCluster.workers);
    expect(cluster.settings).toBe(nodeCluster.settings);
    // Methods run on node:cluster and are stable between reads (removeListener works).
    expect(cluster.on).toBe(cluster.on);
    const listener = (): void => {};
    cluster.on('online', listener);
    expect(nodeCluster.listeners('online')).toContain(listener);
    cluster.off('online', listener);
    expect(nodeCluster.listeners('online')).not.toContain(listener);
    for (const name of ['setupPrimary', 'setupMaster', 'fork', 'forkChild', 'mergeableHeapArgs', 'startupComplete', 'workerStatus'] as const) {
      expect(typeof cluster[name], name).toBe('function');
    }
    expect(cluster.fork).not.toBe(nodeCluster.fork);
    // Not a worker of the mode: nothing to switch.
    expect(cluster.workerStatus()).toEqual({ active: false, serving: false, ownRandom: false });
    expect(cluster.startupComplete()).toBe(false);

    const esm = await runNode<Record<string, string | boolean>>(
      `import cluster, { forkChild, startupComplete } from 'node-ksm/cluster';
       import nodeCluster from 'node:cluster';
       import { createRequire } from 'node:module';
       const cjs = createRequire(import.meta.url)('node-ksm/cluster');
       console.log(JSON.stringify({ same: cluster === cjs, workers: cluster.workers === nodeCluster.workers,
         forkChild: forkChild === cjs.forkChild, startupComplete: typeof startupComplete }));`,
      ['--input-type=module'],
    );
    expect(esm).toEqual({ same: true, workers: true, forkChild: true, startupComplete: 'function' });
  });

  it('refuses bad arguments with TypeError/RangeError before starting anything', () => {
    const cases: Array<[() => unknown, ErrorConstructor, string]> = [
      [() => cluster.setupPrimary('x' as never), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.setupPrimary({ mergeableHeaps: 5 as never }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { serving: 'fast' as never } }), RangeError, 'ERR_OUT_OF_RANGE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { serving: 1 as never } }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { startupTimeoutMs: -1 } }), RangeError, 'ERR_OUT_OF_RANGE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { startupTimeoutMs: 2 ** 31 } }), RangeError, 'ERR_OUT_OF_RANGE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { startupTimeoutMs: '5' as never } }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { onListening: 'yes' as never } }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { trimMalloc: 1 as never } }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.setupPrimary({ mergeableHeaps: { requireMerge: null as never } }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.fork('env' as never), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.forkChild('x.js', { mergeableHeaps: [] as never }), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.forkChild('x.js', [], 'options' as never), TypeError, 'ERR_INVALID_ARG_TYPE'],
      [() => cluster.mergeableHeapArgs({ serving: 'none' as never }), RangeError, 'ERR_OUT_OF_RANGE'],
    ];
    const settings = { ...nodeCluster.settings };
    for (const [call, type, code] of cases) {
      expect(call, String(call)).toThrow(type);
      try {
        call();
      } catch (error) {
        expect((error as { code?: string }).code, String(call)).toBe(code);
      }
    }
    // Nothing reached node:cluster.
    expect(nodeCluster.settings).toEqual(settings);
    expect(rawKsmStat().ksm_merge_any).not.toBe('yes');
  });
});

describe('node-ksm/cluster: workers', () => {
  it('puts each worker in the mode: merge-any on, the seed out of execArgv and /proc/PID/cmdline, serving once it listens', async (ctx) => {
    requireKsm(ctx);
    const app = await startApp('heaps', { work: 'none' });
    for (const worker of await app.ask<{ status: Record<string, boolean>; execArgv: string[]; cmdline: string; comm: string; ksmStat: string }>('status')) {
      expect(worker.status).toEqual({ active: true, serving: true, ownRandom: true });
      expect(/^ksm_merge_any:\s*yes$/m.test(worker.ksmStat)).toBe(true);
      expect(worker.execArgv.filter((arg) => /random.seed|predictable|preload/.test(arg))).toEqual([]);
      expect(worker.cmdline).not.toMatch(/random.seed=\d/);
      // The title that hides the seed does not rename the process (ps, node-ksm status).
      expect(worker.comm).toBe('node');
    }
    expect(app.ready.warnings).toEqual([]);
  });

  it('gives every worker its own Math.random(), worker threads, crypto and inspector ids', async (ctx) => {
    requireKsm(ctx);
    const app = await startApp('heaps', { work: 'none' });
    const [a, b] = await app.ask<{
      math: number[];
      thread: number;
      randomBytes: string;
      randomUUID: string;
      getRandomValues: number[];
      inspectorUrl: string;
    }>('randomness');
    expect(a!.math).not.toEqual(b!.math);
    // A worker thread seeds itself from its own isolate: not the main thread's sequence, not a sibling's.
    expect(new Set([a!.thread, b!.thread, ...a!.math, ...b!.math]).size).toBe(8);
    expect(a!.randomBytes).not.toBe(b!.randomBytes);
    expect(a!.randomUUID).not.toBe(b!.randomUUID);
    expect(a!.getRandomValues).not.toEqual(b!.getRandomValues);
    const session = (url: string): string => /^ws:\/\/127\.0\.0\.1:\d+\/([0-9a-f-]{36})$/.exec(url)![1]!;
    expect(session(a!.inspectorUrl)).not.toBe(session(b!.inspectorUrl));
  });

  it('siblings share V8 heap addresses, the string hash seed, Symbol hashes and vm contexts\' Math.random(); two primaries share none', async (ctx) => {
    requireKsm(ctx);
    const one = await startApp('heaps', { work: 'none' });
    const two = await startApp('heaps', { work: 'none' });
    const name = `nodeKsmProbe${Date.now().toString(36)}`;
    for (const app of [one, two]) await app.ask('probe', { name });
    const chunks = [...one.pids, ...two.pids].map((pid) => v8ChunkStarts(pid));
    const overlap = (x: Set<number>, y: Set<number>): number => [...x].filter((start) => y.has(start)).length / Math.min(x.size, y.size);
    // The same mmap hints: most V8 chunks sit at the same addresses in siblings, almost none across primaries.
    expect(overlap(chunks[0]!, chunks[1]!)).toBeGreaterThan(0.8);
    expect(overlap(chunks[2]!, chunks[3]!)).toBeGreaterThan(0.8);
    expect(overlap(chunks[0]!, chunks[2]!)).toBeLessThan(0.1);

    // The same string hashes to the same value in siblings (the hash seed), and not across primaries.
    const strings = [...one.pids, ...two.pids].map((pid) => [...v8StringHashes(pid, name)]);
    for (const found of strings) expect(found).toHaveLength(1);
    expect(strings[0]).toEqual(strings[1]);
    expect(strings[2]).toEqual(strings[3]);
    expect(strings[0]).not.toEqual(strings[2]);
    // Symbol() created at the same point of the siblings' start-up draws the same hash.
    const symbols = [...one.pids, ...two.pids].map((pid) => [...v8SymbolHashes(pid, `${name}/symbol`)]);
    for (const found of symbols) expect(found).toHaveLength(1);
    expect(symbols[0]).toEqual(symbols[1]);
    expect(symbols[2]).toEqual(symbols[3]);
    expect(symbols[0]).not.toEqual(symbols[2]);

    // A vm context seeds its Math.random() from the isolate's generator, which the siblings' seed started.
    const vmOne = (await one.ask<{ vm: number }>('randomness')).map((w) => w.vm);
    const vmTwo = (await two.ask<{ vm: number }>('randomness')).map((w) => w.vm);
    expect(vmOne[0]).toBe(vmOne[1]);
    expect(vmTwo[0]).toBe(vmTwo[1]);
    expect(vmOne[0]).not.toBe(vmTwo[0]);
  });

  it('forkChild() starts mergeable siblings as cluster.fork() does, and a `node -e` primary\'s script is not run again in them', async (ctx) => {
    requireKsm(ctx);
    // child_process.fork() drops -e from process.execArgv; the mode's execArgv must too.
    // The guard makes a child that runs the script again exit at once instead of forking on.
    const result = await runNode<Array<{ status: Record<string, boolean>; random: number; chunks: number[] }>>(`
      if (process.env.NODE_KSM_EVAL_GUARD) process.exit(3);
      process.env.NODE_KSM_EVAL_GUARD = '1';
      const cluster = require('node-ksm/cluster');
      const spawn = () => new Promise((resolve, reject) => {
        const child = cluster.forkChild(${JSON.stringify(path.join(FIXTURES, 'fork-child.cjs'))});
        child.once('message', resolve);
        child.once('exit', (code) => reject(new Error('child exited ' + code + ' before reporting')));
      });
      Promise.all([spawn(), spawn()]).then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e.message); process.exit(1); });`);
    expect(result.map((r) => r.status)).toEqual([
      { active: true, serving: true, ownRandom: true },
      { active: true, serving: true, ownRandom: true },
    ]);
    expect(result[0]!.random).not.toBe(result[1]!.random);
    const [x, y] = result.map((r) => new Set(r.chunks));
    expect([...x!].filter((start) => y!.has(start)).length / x!.size).toBeGreaterThan(0.8);
  });

  it('where prctl(PR_SET_MEMORY_MERGE) is refused: plain workers and a warning, or with requireMerge the primary throws', async (ctx) => {
    requireKsm(ctx);
    if (process.arch !== 'x64' && process.arch !== 'arm64') return ctx.skip(`no syscall table for ${process.arch}`);
    const deny = path.join(FIXTURES, 'doctor', 'deny-prctl-merge.py');
    const primary = path.join(FIXTURES, 'cluster-primary.cjs');
    const { execFile } = await import('node:child_process');
    const run = (requireMerge: boolean): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) =>
        execFile('python3', [deny, process.execPath, primary, JSON.stringify({ requireMerge })], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Record<string, unknown>),
        ),
      );
    const plain = await run(false);
    expect(plain.warnings).toEqual(['KSM_MERGEABLE_HEAPS']);
    expect(plain.status).toEqual({ active: false, serving: false, ownRandom: false });
    expect((plain.execArgv as string[]).some((arg) => /random.seed|predictable/.test(arg))).toBe(false);
    const strict = await run(true);
    expect(strict.threw).toBe('ERR_KSM_UNSUPPORTED');
    expect(String(strict.message)).toContain('EPERM');
  });

  it('a cluster app switched to the mode merges its workers\' memory more than with plain enableMerge(), side by side', async (ctx) => {
    requireKsm(ctx);
    // Both apps at once: the same machine, the same load, the same scans.
    const [heaps, plain] = await Promise.all([startApp('heaps', { workers: 3 }), startApp('plain', { workers: 3 })]);
    // Four full scans: two to merge what start-up wrote, two for late pages.
    await waitFullScans(4, 300_000);
    const ksm = requireCjs('node-ksm') as typeof import('../lib/index.js');
    const saving = async (app: App): Promise<number> => {
      let total = 0;
      for (const pid of app.pids) total += (await ksm.profit(pid, { exact: true })).total.netBytes ?? 0;
      return total;
    };
    const merging = (app: App): number => app.pids.reduce((sum, pid) => sum + Number(rawKsmStat(pid).ksm_merging_pages ?? 0), 0);
    const [heapsSaved, plainSaved] = [await saving(heaps), await saving(plain)];
    // Measured here: about 4x with three transpile workers each (BENCHMARKS.md, section 9).
    expect(heapsSaved).toBeGreaterThan(2 * plainSaved);
    expect(heapsSaved - plainSaved).toBeGreaterThan(16 * 1024 * 1024);
    // The kernel's own count of pages mapping KSM pages says the same.
    expect(merging(heaps)).toBeGreaterThan(2 * merging(plain));
    // And it is the V8 heap itself that merges: smaps `KSM:` of the heap's chunks.
    const heapKsm = (app: App): V8HeapKsm['heap'] =>
      app.pids
        .map((pid) => v8HeapKsm(pid).heap)
        .reduce((a, b) => ({
          anonymousBytes: a.anonymousBytes + b.anonymousBytes,
          ksmBytes: a.ksmBytes + b.ksmBytes,
          ksmDataBytes: a.ksmDataBytes + b.ksmDataBytes,
        }));
    const [heapsV8, plainV8] = [heapKsm(heaps), heapKsm(plain)];
    const figures = JSON.stringify({ heapsSaved, plainSaved, heapsV8, plainV8 });
    console.log(`cluster side by side: ${figures}`);
    // Measured here: 97% of the chunks' pages against 40-45%, none of them all zeros.
    expect(heapsV8.anonymousBytes, figures).toBeGreaterThan(3 * 8 * 1024 * 1024);
    expect(heapsV8.ksmDataBytes / heapsV8.anonymousBytes, figures).toBeGreaterThan(0.6);
    expect(heapsV8.ksmDataBytes, figures).toBeGreaterThan(2 * plainV8.ksmDataBytes);
    // And `node-ksm status` lists the workers with their fair shares.
    const status = await runCli(['status', '--json', '--exact']);
    const listed = new Map((JSON.parse(status.stdout) as StatusJson).processes.map((p) => [p.pid, p.savedBytes ?? 0]));
    const shown = (app: App): number => app.pids.reduce((sum, pid) => sum + listed.get(pid)!, 0);
    for (const pid of heaps.pids) expect(listed.get(pid), `worker ${pid} in node-ksm status`).toBeGreaterThan(0);
    expect(shown(heaps)).toBeGreaterThan(2 * shown(plain));
  });
});
