// The traffic of the v8-heap suite, and its cost figures: throughput, p99
// latency, GC pauses, CPU time per operation.
import { createRequire } from 'node:module';

import { percentile } from './heap.mjs';

const require = createRequire(import.meta.url);

function gcSummary(workers) {
  const pauses = workers.flatMap((w) => w.gcPauses);
  return {
    count: pauses.length,
    totalMs: pauses.reduce((sum, p) => sum + p, 0),
    maxMs: pauses.length ? Math.max(...pauses) : 0,
    p99Ms: percentile(pauses, 99) ?? 0,
  };
}

/** Code-heavy group: every worker transpiles random-key snippets for `ms`. */
export async function codeTraffic(group, { ms }) {
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

function cannon(url, durationS) {
  const autocannon = require('autocannon');
  return autocannon({ url, connections: 32, duration: durationS, idReplacement: true });
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
    throughput: result.requests.average,
    p99: result.latency.p99,
    p50: result.latency.p50,
    ops: served,
    cpuMs,
    cpuPerOpMs: cpuMs / served,
    gc: gcSummary(stats.workers),
    perWorker: stats.workers.map((w) => w.served),
  };
}
