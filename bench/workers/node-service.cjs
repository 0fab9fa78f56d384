// A Node service built from packages no one in this project wrote, as
// `cluster` runs it: the primary forks WORKERS workers and prints one JSON
// line per worker once it has loaded everything. Each worker loads
// geoip-lite (its tables in Buffers), tiktoken (WebAssembly), sql.js
// (WebAssembly) with a 200,000-row table, and typescript (a large body of
// JS code it compiles with). Nothing here calls enableMerge(): the bench
// starts it with `--require node-ksm/register`. The libraries' memory is
// named with labelAllocations() so the reports can say what merged.
const cluster = require('node:cluster');

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || 4);
  for (let i = 0; i < workers; i++) cluster.fork().on('message', (m) => process.stdout.write(`${JSON.stringify(m)}\n`));
  process.stdin.on('end', () => {
    for (const worker of Object.values(cluster.workers)) worker.kill('SIGKILL');
    process.exit(0);
  });
  process.stdin.resume();
} else {
  const ksm = require('node-ksm');
  const label = (name, fn) => (ksm.isSupported() ? ksm.labelAllocations(name, fn) : fn());
  (async () => {
    const t0 = performance.now();
    const geoip = label('geoip-lite', () => require('geoip-lite'));
    geoip.lookup('8.8.8.8');
    const encoding = label('tiktoken', () => require('tiktoken').get_encoding('cl100k_base'));
    const tokens = encoding.encode('What merges in a Node service, and what it costs.').length;
    const SQL = await require('sql.js')();
    const rows = Number(process.env.SQL_ROWS || 200000);
    const db = label('sql.js', () => {
      const d = new SQL.Database();
      d.run('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)');
      d.run('BEGIN');
      const insert = d.prepare('INSERT INTO t VALUES (?, ?, ?)');
      for (let i = 0; i < rows; i++) insert.run([i, `name-${i}`, (i * 7919) % 1000 / 10]);
      insert.free();
      d.run('COMMIT');
      return d;
    });
    const count = db.exec('SELECT count(*) FROM t')[0].values[0][0];
    const ts = require('typescript');
    const source = Array.from({ length: 2000 }, (_, i) => `export function f${i}(a: number, b: string): string { return b.repeat(a % 3) + ${i}; }`).join('\n');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS } }).outputText.length;
    globalThis.keep = { geoip, encoding, db, ts };
    process.send({ pid: process.pid, loadMs: performance.now() - t0, tokens, count, js, mergeAny: ksm.isSupported() && ksm.isMergeEnabled() });
  })().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
