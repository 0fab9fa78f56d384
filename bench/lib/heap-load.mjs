// The traffic of the v8-heap suite, and its cost figures: throughput, p99
// latency, GC pauses, CPU time per operation.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { percentile } from './heap.mjs';

const WORKERS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'workers');

function gcSummary(workers) {
  const pauses = workers.flatMap((w) => w.gcPauses);
  return {
    count: pauses.length,
    totalMs: pauses.reduce((sum, p) => sum + p, 0),
    maxMs: pauses.length ? Math.max(...pauses) : 0,
    p99Ms: percentile(pauses, 99) ?? 0,
  };
}

/** Code-heavy group: every worker transpiles random-key snippets, `warmupMs` then `ms` measured. */
export async function codeTraffic(group, { warmupMs, ms }) {
  if (warmupMs > 0) await group.request({ cmd: 'traffic', ms: warmupMs }, warmupMs + 180_000);
  const reply = await group.request({ cmd: 'traffic', ms }, ms + 180_000);
  const ops = reply.workers.reduce((sum, w) => sum + w.ops, 0);
  const cpuMs = reply.workers.reduce((sum, w) => sum + w.cpuMs, 0);
  return {
    unit: 'transpiles/s',
    throughput: ops / (ms / 1000),
    p99: percentile(reply.workers.flatMap((w) => w.latencies), 99),
    p50: percentile(reply.workers.flatMap((w) => w.latencies), 50),
    ops,
    cpuMs,
    cpuPerOpMs: cpuMs / ops,
    gc: gcSummary(reply.workers),
  };
}

/** One autocannon run in a process of its own (groups load side by side). */
function cannon(url, durationS) {
  return new Promise((resolve, reject) => {
    const args = [path.join(WORKERS, 'heap-load.cjs'), JSON.stringify({ url, durationS, connections: 32 })];
    execFile(process.execPath, args, { timeout: (durationS + 60) * 1000 }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`v8-heap load: ${error.message}\n${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
    });
  });
}

/** HTTP group: autocannon on loopback, random ids; warm-up, then the measured window. */
export async function httpLoad(group, { warmupS, durationS }) {
  const url = `http://127.0.0.1:${group.port}/item/[<id>]`;
  await cannon(url, warmupS);
  await group.request({ cmd: 'stats-reset' });
  const result = await cannon(url, durationS);
  const stats = await group.request({ cmd: 'stats' });
  const served = stats.workers.reduce((sum, w) => sum + w.served, 0);
  const cpuMs = stats.workers.reduce((sum, w) => sum + w.cpuMs, 0);
  if (result.errors > 0 || result.non2xx > 0) throw new Error(`v8-heap http: ${result.errors} errors, ${result.non2xx} non-2xx responses`);
  return {
    unit: 'req/s',
    throughput: result.requestsPerSecond,
    p99: result.p99,
    p50: result.p50,
    ops: served,
    cpuMs,
    cpuPerOpMs: cpuMs / served,
    gc: gcSummary(stats.workers),
    perWorker: stats.workers.map((w) => w.served),
  };
}
