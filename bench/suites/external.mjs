// 7 and 8: the reporting and estimate benchmarks live beside the modules
// they measure (bench/profit.* and bench/estimate.*, written with them).
// The harness runs each one if it is there and takes its rows:
//
//   node bench/<name>.mjs [--quick | --smoke]
//
// prints, as its last stdout line, JSON { rows: [{ figure, measured,
// comparedWith, ratio, target, verdict, notes? }], method?: string[] }.
// Output that is not such a line is kept verbatim in the report.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

export const id = 'external';
export const title = 'Reporting and estimate';

const run$ = promisify(execFile);

const BENCHES = [
  { suite: 'profit', what: 'profit() / regions() against reading the same smaps raw (100 / 1,000 / 10,000 VMAs)', target: '<= 1.2x' },
  { suite: 'estimate', what: 'estimate(): pages hashed per second on one core against sequential read bandwidth, and a crypto-hash-per-page baseline', target: '>= 50% of bandwidth' },
];

function find(root, name) {
  for (const ext of ['mjs', 'cjs', 'js']) {
    const file = path.join(root, 'bench', `${name}.${ext}`);
    if (fs.existsSync(file)) return file;
  }
  return undefined;
}

export async function run(ctx) {
  const rows = [];
  const method = [];
  for (const bench of BENCHES) {
    if (ctx.only && !ctx.only.includes(bench.suite) && !ctx.only.includes('external')) continue;
    const command = `npm run bench -- --only ${bench.suite}`;
    const file = find(ctx.root, bench.suite);
    if (!file) {
      rows.push({ suite: bench.suite, figure: bench.what, measured: 'pending', comparedWith: '', ratio: 'pending', target: bench.target, verdict: `pending: bench/${bench.suite}.mjs not there yet`, command });
      method.push(`${bench.suite}: pending. bench/${bench.suite}.mjs is written with the module it measures and was not in this checkout; the harness runs it as soon as it is (contract in bench/README.md).`, '');
      continue;
    }
    const args = [file, ...(ctx.smoke ? ['--smoke'] : ctx.quick ? ['--quick'] : [])];
    let stdout = '';
    try {
      ({ stdout } = await run$(process.execPath, args, { cwd: ctx.root, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60_000 }));
    } catch (error) {
      rows.push({ suite: bench.suite, figure: bench.what, measured: `failed: ${String(error.message).split('\n')[0]}`, verdict: 'failed', target: bench.target, command });
      continue;
    }
    const last = stdout.trim().split('\n').pop() ?? '';
    let parsed;
    try {
      parsed = JSON.parse(last);
    } catch {
      parsed = undefined;
    }
    if (parsed && Array.isArray(parsed.rows)) {
      for (const row of parsed.rows) rows.push({ suite: bench.suite, command, ...row });
      if (Array.isArray(parsed.method)) method.push(...parsed.method, '');
    } else {
      rows.push({ suite: bench.suite, figure: bench.what, measured: 'see output below', target: bench.target, verdict: 'unparsed', command });
      method.push(`\`${path.relative(ctx.root, file)}\` printed:`, '', '```', stdout.trim(), '```', '');
    }
    ctx.log(`${bench.suite}: ${rows.filter((r) => r.suite === bench.suite).length} row(s)`);
  }
  return { rows, method, command: 'npm run bench -- --only profit,estimate' };
}
