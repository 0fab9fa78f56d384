// A code-heavy worker of the v8-heap suite: loads TypeScript and compiles a
// fixed snippet at start-up, then (on `traffic`) transpiles snippets named
// after random keys into a 5,000-entry cache: the same code, different data
// in every worker. Started by heap-primary.cjs; talks over IPC.
//   BENCH_HEAP: JSON { work: 'transpile' | 'typecheck', enableMerge }
'use strict';
const path = require('node:path');

const spec = JSON.parse(process.env.BENCH_HEAP ?? '{}');
const root = path.join(__dirname, '..', '..');
// From the process's start: Node's bootstrap, and in the mode the preload (node-ksm, enableMerge(), the
// reseed), count as plain workers' own require of node-ksm does.
const t0 = 0;
const cpu0 = { user: 0, system: 0 };
if (spec.enableMerge) require(path.join(root, 'dist', 'index.js')).enableMerge();
const { workerStats } = require('./heap-stats.cjs');

const ts = require('typescript');

const SNIPPET = `
interface Point { x: number; y: number }
export class Path<T extends Point> {
  private points: T[] = [];
  add(p: T): this { this.points.push(p); return this; }
  length(): number {
    let total = 0;
    for (let i = 1; i < this.points.length; i++) {
      const a = this.points[i - 1]!, b = this.points[i]!;
      total += Math.hypot(b.x - a.x, b.y - a.y);
    }
    return total;
  }
}
export const enum Color { Red, Green, Blue }
export async function load(url: string): Promise<Path<Point>> {
  const res = await fetch(url);
  const data = (await res.json()) as Point[];
  return data.reduce((p, q) => p.add(q), new Path<Point>());
}
`;
const compilerOptions = { target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS };
let output = ts.transpileModule(SNIPPET, { compilerOptions }).outputText;

if (spec.work === 'typecheck') {
  // A language-service-like worker: the checker and lib.d.ts in memory.
  const host = ts.createCompilerHost({});
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, language) => (file === 'snippet.ts' ? ts.createSourceFile(file, SNIPPET, language) : getSourceFile(file, language));
  const program = ts.createProgram(['snippet.ts'], { strict: true, target: ts.ScriptTarget.ES2020, noEmit: true }, host);
  globalThis.program = program;
  output += ts.getPreEmitDiagnostics(program).length;
}

const cache = new Map();
const { randomBytes } = require('node:crypto');

/** A snippet of 1-8 functions named after a random key of 2-10 bytes: a different shape every time. */
function randomSnippet() {
  const random = randomBytes(11);
  const key = random.subarray(1, 2 + (random[0] % 9)).toString('hex');
  const lines = [];
  for (let i = 0; i <= random[0] % 8; i++) {
    lines.push(`export function f${i}_${key}(x: string, n: number = ${i}): string { return x.repeat(n) + '${key}'; }`);
  }
  return { key, source: lines.join('\n') };
}

function traffic(ms) {
  const end = Date.now() + ms;
  const latencies = [];
  while (Date.now() < end) {
    const t = performance.now();
    const { key, source } = randomSnippet();
    cache.set(key, ts.transpileModule(source, { compilerOptions }).outputText);
    if (cache.size > 5000) cache.delete(cache.keys().next().value);
    latencies.push(performance.now() - t);
  }
  return latencies;
}

const startupMs = performance.now() - t0;
const startupCpu = process.cpuUsage(cpu0);
// In the mode, start-up ends here (nothing listens in this worker).
if (spec.mode === 'mergeable-heaps') require('node-ksm/cluster').startupComplete();

const stats = workerStats();
process.on('message', (message) => {
  if (message?.cmd === 'traffic') {
    stats.reset();
    const latencies = traffic(message.ms);
    const cpu = stats.read();
    // perf_hooks delivers `gc` entries on a later turn of the event loop.
    setTimeout(() => process.send({ cmd: 'traffic', ops: latencies.length, latencies, ...cpu, gcPauses: stats.read().gcPauses }), 50);
  } else if (message?.cmd === 'stats') {
    process.send({ cmd: 'stats', ...stats.read() });
  } else if (message?.cmd === 'exit') {
    process.exit(0);
  }
});
process.send({
  cmd: 'ready',
  pid: process.pid,
  startupMs,
  startupCpuMs: (startupCpu.user + startupCpu.system) / 1000,
  outputLength: output.length,
  random: Math.random(),
});
