/**
 * `node-ksm estimate <pid...>`: the dry run of estimate(), with a progress
 * line and the per-VMA table.
 *
 * Progress: one line on stderr rewritten in place, only when stderr is a
 * terminal and not with --json. estimate() reports each phase's work done
 * against a known total, which is what a bar can honestly show; a progress
 * package (cli-progress) would add ETA smoothing and a dependency for no
 * figure we do not already have.
 */
import type { Command } from 'commander';

import { estimate, type EstimateOptions, type EstimateProgress, type EstimateVma } from '../report/estimate.js';
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
  all?: boolean;
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

export async function runEstimateCommand(pidTexts: string[], o: EstimateCliOptions): Promise<void> {
  const pids = pidTexts.map((text) => parseInteger(text, 'pid', 1, 4194304));
  const options: EstimateOptions = {};
  // estimate() takes at most a day between its two samples.
  if (o.interval !== undefined) options.intervalMs = Math.round(parseDuration(o.interval, '--interval', 86_400) * 1000);
  if (o.onlyMergeable === true) options.onlyMergeable = true;
  if (o.minRegion !== undefined) options.minRegionBytes = parseSize(o.minRegion, '--min-region');
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  process.once('SIGINT', abort);
  options.signal = controller.signal;

  const tty = process.stderr.isTTY === true && o.json !== true && o.progress !== false;
  if (tty) options.onProgress = (p) => process.stderr.write(`\r\x1b[2K${progressLine(p)}`);
  let report;
  try {
    report = await estimate(pids, options);
  } finally {
    process.off('SIGINT', abort);
    if (tty) process.stderr.write('\r\x1b[2K');
  }
  if (o.json === true) {
    printJson({ kind: 'node-ksm/estimate', version: 1, pids, report } satisfies EstimateJson);
    return;
  }
  const c = colors(o);
  const out: string[] = [];
  for (const p of report.processes) {
    out.push(
      `${c.bold(`pid ${p.pid}`)}${p.exited ? c.yellow(' (exited during the estimate)') : ''}  ` +
        `candidates ${formatCount(p.candidatePages)} pages (${formatCount(p.candidatePagesMergeableNow)} mergeable now, ` +
        `${formatCount(p.candidatePagesAfterEnableMerge)} after enableMerge())  predicted saving ${c.green(formatBytes(p.predictedSavedBytes))}`,
    );
    // By default the VMAs that hold candidates; --all adds the skipped ones with the reason.
    const shown = o.all === true ? p.vmas : p.vmas.filter((vma) => vma.candidatePages > 0);
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
  out.push(
    `${c.bold('predicted saving')} ${c.green(formatBytes(report.predictedSavedBytes))} ` +
      `(pages_sharing ${formatCount(report.predictedPagesSharing)}, zero pages ${formatCount(report.predictedZeroPages)}, ` +
      `use_zero_pages ${report.useZeroPages ? 'on' : 'off'})`,
  );
  out.push(
    c.dim(
      `${formatCount(report.pagesHashed)} pages hashed in ${(report.elapsedMs / 1000).toFixed(2)} s, ` +
        `estimator memory ${formatBytes(report.memoryBytes)}${report.intervalMs > 0 ? `, volatile pages from two samples ${report.intervalMs} ms apart` : ''}`,
    ),
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

export function register(program: Command): void {
  program
    .command('estimate')
    .description('dry run: hash the pages of processes and predict, per VMA, what KSM would merge')
    .argument('<pid...>', 'processes to compare (twins across them count)')
    .option('--interval <duration>', 'sample twice this far apart to find volatile pages (e.g. 200ms; default: one sample)')
    .option('--only-mergeable', 'only VMAs already marked mergeable (mg)')
    .option('--min-region <size>', 'skip regions smaller than this (e.g. 1MiB)')
    .option('--all', 'list every VMA, also those without candidates (with why)')
    .option('--no-progress', 'no progress line on stderr')
    .option('--json', 'print an EstimateJson document (see README)')
    .addHelpText('after', "\nReading other processes' memory needs ptrace rights (root, or the same user with ptrace_scope 0). Ctrl-C aborts.")
    .action(async (pids: string[], _options, command: Command) => {
      await runEstimateCommand(pids, command.optsWithGlobals<EstimateCliOptions>());
    });
}
