/**
 * `node-ksm estimate <pid...>` / `--all`: the dry run of estimate(), with a
 * progress line and the per-VMA table (per process and top lists for --all).
 *
 * Progress: one line on stderr rewritten in place, only when stderr is a
 * terminal and not with --json. estimate() reports each phase's work done
 * against a known total, which is what a bar can honestly show; a progress
 * package (cli-progress) would add ETA smoothing and a dependency for no
 * figure we do not already have.
 */
import type { Command } from 'commander';

import type { EstimateAll } from '../report/estimate-all.js';
import { estimate, type EstimateOptions, type EstimateProgress, type EstimateResult, type EstimateVma } from '../report/estimate.js';
import type { EstimateJson } from './json.js';
import {
  colors,
  formatBytes,
  formatCount,
  parseDuration,
  parseInteger,
  parseSize,
  printJson,
  printable,
  table,
  type GlobalOptions,
} from './output.js';

interface EstimateCliOptions extends GlobalOptions {
  interval?: string;
  onlyMergeable?: boolean;
  minRegion?: string;
  threads?: string;
  all?: boolean;
  allVmas?: boolean;
  top?: string;
  progress?: boolean;
}

const PHASES: Record<EstimateProgress['phase'], string> = {
  pagemap: 'finding pages',
  sample: 'hashing',
  resample: 're-hashing',
  confirm: 'confirming',
};

/** A progress line for a terminal: `hashing       [#####.....]  52% 13,000/25,000`. */
export function progressLine(p: EstimateProgress, width = 30): string {
  const phase = (PHASES[p.phase] ?? p.phase).padEnd(14);
  if (p.total <= 0) return `${phase}${formatCount(p.done)}`;
  const share = Math.min(1, p.done / p.total);
  const filled = Math.round(share * width);
  return `${phase}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${formatCount(p.done)}/${formatCount(p.total)}`;
}

/** The mapping by what it is: a path, or the kind of anonymous memory, and its label. */
function mapping(vma: EstimateVma): string {
  const name = vma.pathname === '' ? `[${vma.kind}]` : printable(vma.pathname);
  return vma.label === undefined ? name : `${name} ${printable(vma.label)}`;
}

function mergeState(vma: EstimateVma): string {
  if (vma.mergeable) return 'yes';
  if (vma.candidateAfterEnableMerge) return 'after enableMerge';
  return vma.ksmCompatible ? 'no' : 'never';
}

/**
 * Progress on stderr: a bar rewritten in place on a terminal; otherwise, for
 * --all (which takes a while), one plain line as each phase begins.
 */
function progressSink(o: EstimateCliOptions): { onProgress: ((p: EstimateProgress) => void) | undefined; end(): void } {
  if (o.progress === false) return { onProgress: undefined, end: () => {} };
  if (process.stderr.isTTY === true && o.json !== true) {
    return {
      onProgress: (p) => process.stderr.write(`\r\x1b[2K${progressLine(p)}`),
      end: () => process.stderr.write('\r\x1b[2K'),
    };
  }
  if (o.all !== true) return { onProgress: undefined, end: () => {} };
  let phase: string | undefined;
  return {
    onProgress: (p) => {
      if (p.phase === phase) return;
      phase = p.phase;
      process.stderr.write(`estimate --all: ${PHASES[p.phase] ?? p.phase} (${formatCount(p.total)})\n`);
    },
    end: () => {},
  };
}

export async function runEstimateCommand(pidTexts: string[], o: EstimateCliOptions): Promise<void> {
  const pids = pidTexts.map((text) => parseInteger(text, 'pid', 1, 4194304));
  if (o.all === true && pids.length > 0) throw new TypeError('estimate: give pids or --all, not both');
  if (o.all !== true && pids.length === 0) throw new TypeError('estimate: give at least one pid, or --all for every process');
  const options: EstimateOptions = {};
  // estimate() takes at most a day between its two samples.
  if (o.interval !== undefined) options.intervalMs = Math.round(parseDuration(o.interval, '--interval', 86_400) * 1000);
  if (o.onlyMergeable === true) options.onlyMergeable = true;
  if (o.minRegion !== undefined) options.minRegionBytes = parseSize(o.minRegion, '--min-region');
  if (o.threads !== undefined) options.threads = parseInteger(o.threads, '--threads', 1, 256);
  if (o.top !== undefined) options.top = parseInteger(o.top, '--top', 0, 1e6);
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  process.once('SIGINT', abort);
  options.signal = controller.signal;

  const progress = progressSink(o);
  if (progress.onProgress !== undefined) options.onProgress = progress.onProgress;
  let report;
  try {
    report = o.all === true ? await estimate({ ...options, all: true }) : await estimate(pids, options);
  } finally {
    process.off('SIGINT', abort);
    progress.end();
  }
  if (o.json === true) {
    printJson({ kind: 'node-ksm/estimate', version: 1, pids: report.processes.map((p) => p.pid), report } satisfies EstimateJson);
    return;
  }
  const c = colors(o);
  const out: string[] = [];
  if (report.all !== undefined) {
    printAll(report, report.all, o);
    return;
  }
  for (const p of report.processes) {
    out.push(
      `${c.bold(`pid ${p.pid}`)}${p.exited ? c.yellow(' (exited during the estimate)') : ''}  ` +
        `candidates ${formatCount(p.candidatePages)} pages (${formatCount(p.candidatePagesMergeableNow)} mergeable now, ` +
        `${formatCount(p.candidatePagesAfterEnableMerge)} after enableMerge())  predicted saving ${c.green(formatBytes(p.predictedSavedBytes))}`,
    );
    // By default the VMAs that hold candidates; --all-vmas adds the skipped ones with the reason.
    const shown = o.allVmas === true ? p.vmas : p.vmas.filter((vma) => vma.candidatePages > 0);
    out.push(
      table(
        ['START-END', 'MAPPING', 'MERGEABLE', 'CANDIDATE', 'ZERO', 'VOLATILE', 'TWIN VMA', 'TWIN PROC', 'TWIN OTHER', 'SAVED', 'SHARE'],
        shown.map((vma) => [
          `${vma.start.toString(16)}-${vma.end.toString(16)}`,
          vma.status === 'scanned' ? mapping(vma) : `${mapping(vma)} ${c.dim(`(${vma.status}${vma.reason === undefined ? '' : `: ${printable(vma.reason)}`})`)}`,
          mergeState(vma),
          formatCount(vma.candidatePages),
          formatCount(vma.zeroPages),
          formatCount(vma.volatilePages),
          formatCount(vma.twinInVma),
          formatCount(vma.twinInProcess),
          formatCount(vma.twinInOtherProcess),
          c.green(formatBytes(vma.predictedSavedBytes)),
          `${(vma.share * 100).toFixed(1)}%`,
        ]),
        ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
      ),
    );
    out.push('');
  }
  out.push(...totalLines(report, c));
  process.stdout.write(`${out.join('\n')}\n`);
}

/** --all as text: the totals, who was left out, the top processes and mappings. */
/** The closing lines of either text report: the predicted saving, and what the estimate cost. */
function totalLines(report: EstimateResult, c: ReturnType<typeof colors>): string[] {
  const interval = report.intervalMs > 0 ? `, volatile pages from two samples ${report.intervalMs} ms apart` : '';
  return [
    `${c.bold('predicted saving')} ${c.green(formatBytes(report.predictedSavedBytes))} ` +
      `(pages_sharing ${formatCount(report.predictedPagesSharing)}, zero pages ${formatCount(report.predictedZeroPages)}, ` +
      `use_zero_pages ${report.useZeroPages ? 'on' : 'off'})`,
    c.dim(
      `${formatCount(report.pagesHashed)} pages hashed on ${report.threads} threads in ${(report.elapsedMs / 1000).toFixed(2)} s, ` +
        `estimator memory ${formatBytes(report.memoryBytes)}${interval}`,
    ),
  ];
}

function printAll(report: EstimateResult, all: EstimateAll, o: EstimateCliOptions): void {
  const c = colors(o);
  const out: string[] = [];
  const counts = Object.entries(all.skippedCounts).filter(([, n]) => n > 0).map(([why, n]) => `${n} ${why}`);
  out.push(
    `${c.bold('whole machine')}: ${formatCount(all.listed)} processes listed, ${formatCount(all.estimated)} estimated, ` +
      `${formatCount(all.skipped.length)} left out${counts.length > 0 ? ` (${counts.join(', ')})` : ''}`,
  );
  out.push('');
  out.push(c.bold('top processes by predicted saving'));
  out.push(
    table(
      ['PID', 'COMM', 'CANDIDATE', 'TWIN OTHER', 'SAVED', 'SHARE'],
      all.topProcesses.map((p) => [String(p.pid), p.comm ?? '?', formatCount(p.candidatePages), formatCount(p.twinInOtherProcess), c.green(formatBytes(p.predictedSavedBytes)), `${(p.share * 100).toFixed(1)}%`]),
      ['right', 'left', 'right', 'right', 'right', 'right'],
    ),
  );
  out.push('');
  out.push(c.bold('top mappings by predicted saving'));
  out.push(
    table(
      ['PID', 'COMM', 'START-END', 'MAPPING', 'MERGEABLE', 'CANDIDATE', 'TWIN OTHER', 'SAVED', 'SHARE'],
      all.topVmas.map((v) => [
        String(v.pid),
        v.comm ?? '?',
        `${v.start.toString(16)}-${v.end.toString(16)}`,
        v.pathname === '' ? '[anon]' : v.pathname,
        v.mergeable ? 'yes' : 'no',
        formatCount(v.candidatePages),
        formatCount(v.twinInOtherProcess),
        c.green(formatBytes(v.predictedSavedBytes)),
        `${(v.share * 100).toFixed(1)}%`,
      ]),
      ['right', 'left', 'left', 'left', 'left', 'right', 'right', 'right', 'right'],
    ),
  );
  // Kernel threads are only counted; the others are named.
  const named = all.skipped.filter((s) => s.reason !== 'kernel thread');
  if (named.length > 0) {
    out.push('');
    out.push(c.bold('left out'));
    out.push(table(['PID', 'COMM', 'WHY'], named.map((s) => [String(s.pid), s.comm ?? '?', s.reason]), ['right', 'left', 'left']));
  }
  out.push('');
  out.push(...totalLines(report, c));
  process.stdout.write(`${out.join('\n')}\n`);
}

export function register(program: Command): void {
  program
    .command('estimate')
    .description('dry run: hash the pages of processes and predict, per VMA, what KSM would merge')
    .argument('[pid...]', 'processes to compare (twins across them count)')
    .option('--all', 'every process this user may read (kernel threads and the others left out, and listed); top lists of where the duplicates are')
    .option('--top <n>', 'with --all: entries in each top list (default 20)')
    .option('--interval <duration>', 'sample twice this far apart to find volatile pages (e.g. 200ms; default: one sample)')
    .option('--only-mergeable', 'only VMAs already marked mergeable (mg)')
    .option('--min-region <size>', 'skip regions smaller than this (e.g. 1MiB)')
    .option('--threads <n>', 'threads to hash on (default: every core on 1-2 cores, all but one beyond)')
    .option('--all-vmas', 'list every VMA, also those without candidates (with why)')
    .option('--no-progress', 'no progress line on stderr')
    .option('--json', 'print an EstimateJson document (see README)')
    .addHelpText('after', "\nReading other processes' memory needs ptrace rights (root, or the same user with ptrace_scope 0). Ctrl-C aborts.")
    .action(async (pids: string[], _options, command: Command) => {
      await runEstimateCommand(pids, command.optsWithGlobals<EstimateCliOptions>());
    });
}
