// 7 and 8: the reporting and estimate benchmarks live beside the modules
// they measure (bench/profit.* and bench/estimate.*, written with them).
// The harness runs each one if it is there and takes its rows:
//
//   node bench/<name>.mjs [--quick | --smoke]
//
// prints, as its last stdout line, JSON { rows: [{ figure, measured,
// comparedWith, ratio, target, verdict, notes? }], method?: string[] }.
// It is also given `--json`; bench/estimate.mjs as first written prints its
// own report object for that, which adaptEstimate() turns into rows. Output
// that is neither is kept verbatim in the report.
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

const pct = (value) => (typeof value === 'number' ? `${(value * 100).toFixed(1)}%` : 'n/a');
const num = (value, digits = 2) => (typeof value === 'number' ? value.toFixed(digits) : 'n/a');

/** bench/estimate.mjs --json: { speed: { readGBs, estimateSelf, js, ... }, accuracy }. */
function adaptEstimate(report) {
  const speed = report?.speed;
  const self = speed?.estimateSelf;
  if (!self || typeof self.ofRead !== 'number') return undefined;
  const jsBest = Math.max(...Object.values(speed.js ?? {}).map((v) => v.pagesPerSec ?? 0));
  const rows = [
    {
      figure: `estimate('self'): pages hashed per second on one core (${speed.mib ?? '?'} MiB)`,
      measured: `${num(self.samplePagesPerSec / 1e6)} M pages/s = ${num(self.GBs)} GB/s`,
      comparedWith: `sequential read on one core, same run: ${num(speed.readGBs)} GB/s`,
      ratio: `${pct(self.ofRead)} of read`,
      target: '>= 50% of read bandwidth',
      verdict: self.ofRead >= 0.5 ? 'met' : `missed by ${pct(0.5 - self.ofRead)}`,
    },
    {
      figure: "estimate('self') against hashing each page with node:crypto in JavaScript",
      measured: `${num(self.samplePagesPerSec / 1e6)} M pages/s`,
      comparedWith: `best of sha1/md5 per page into a Map: ${num(jsBest / 1e6, 3)} M pages/s`,
      ratio: self.vsJs,
      target: '',
      verdict: 'measured',
    },
  ];
  const accuracy = report.accuracy;
  if (accuracy && typeof accuracy.errorOfCandidates === 'number') {
    rows.push({
      figure: 'estimate() prediction against what KSM then merged (4 workers)',
      measured: `predicted ${num(accuracy.predictedSavedPages, 1)} pages saved`,
      comparedWith: `merged ${accuracy.mergedSavedPages} (pagemap + kpageflags)`,
      ratio: `${pct(accuracy.errorOfCandidates)} error`,
      target: '<= 2% of candidate pages',
      verdict: accuracy.errorOfCandidates <= 0.02 ? 'met' : 'missed',
    });
  } else if (accuracy?.skipped) {
    rows.push({ figure: 'estimate() accuracy', measured: `skipped: ${accuracy.skipped}`, verdict: 'skipped' });
  }
  return rows;
}

const ADAPTERS = { estimate: adaptEstimate };

function parseOutput(stdout) {
  const text = stdout.trim();
  for (const candidate of [text.split('\n').pop() ?? '', text.slice(text.indexOf('{'))]) {
    try {
      return JSON.parse(candidate);
    } catch {
      /* try the next */
    }
  }
  return undefined;
}

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
    if (ctx.smoke) {
      // The smoke run checks the harness, not other people's benchmarks.
      rows.push({ suite: bench.suite, figure: bench.what, measured: `bench/${path.basename(file)} present, not run in --smoke`, target: bench.target, verdict: 'not run', command });
      continue;
    }
    const size = ctx.smoke ? ['--mib', '16'] : ctx.quick ? ['--mib', '128'] : [];
    const args = [file, '--json', ...(ctx.smoke ? ['--smoke'] : ctx.quick ? ['--quick'] : []), ...size];
    let stdout = '';
    try {
      ({ stdout } = await run$(process.execPath, args, { cwd: ctx.root, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60_000 }));
    } catch (error) {
      rows.push({ suite: bench.suite, figure: bench.what, measured: `failed: ${String(error.message).split('\n')[0]}`, verdict: 'failed', target: bench.target, command });
      continue;
    }
    const parsed = parseOutput(stdout);
    const adapted = parsed && !Array.isArray(parsed.rows) ? ADAPTERS[bench.suite]?.(parsed) : undefined;
    if (adapted) {
      for (const row of adapted) rows.push({ suite: bench.suite, command, ...row });
      method.push(`${bench.suite}: \`${path.relative(ctx.root, file)} --json\`, its own report turned into rows; raw:`, '', '```json', JSON.stringify(parsed, null, 2), '```', '');
    } else if (parsed && Array.isArray(parsed.rows)) {
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
