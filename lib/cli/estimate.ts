/**
 * `node-ksm estimate <pid...>`: the dry run of issue 5, with a progress line
 * and the per-VMA table.
 *
 * Progress: one line on stderr rewritten in place, only when stderr is a
 * terminal and not with --json. estimate() reports pages hashed against a
 * known total, which is all a bar can honestly show; a dependency
 * (cli-progress) would add ETA smoothing we cannot back with figures.
 */
import type { Command } from 'commander';

import { missingModule, runEstimate, type EstimateProgress } from '../adapters.js';
import type { EstimateJson } from './json.js';
import { colors, formatBytes, formatCount, parseDuration, parseInteger, parseSize, printJson, table, type GlobalOptions } from './output.js';

type Obj = Record<string, unknown>;

interface EstimateOptions extends GlobalOptions {
  interval?: string;
  onlyMergeable?: boolean;
  minRegion?: string;
  progress?: boolean;
}

/** A progress line for a terminal: `[#####.....] 52% 13,000/25,000 pages`. */
export function progressLine(p: EstimateProgress, width = 30): string {
  const phase = p.phase === undefined ? '' : `${p.phase} `;
  if (p.total === undefined || p.total <= 0) return `${phase}${formatCount(p.done)}`;
  const share = Math.min(1, p.done / p.total);
  const filled = Math.round(share * width);
  return `${phase.padEnd(9)}[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${formatCount(p.done)}/${formatCount(p.total)}`;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined);

export async function runEstimateCommand(pidTexts: string[], o: EstimateOptions): Promise<void> {
  const pids = pidTexts.map((text) => parseInteger(text, 'pid', 1, 4194304));
  const options: Obj = {};
  if (o.interval !== undefined) options.intervalMs = Math.round(parseDuration(o.interval, '--interval') * 1000);
  if (o.onlyMergeable === true) options.onlyMergeable = true;
  if (o.minRegion !== undefined) options.minRegionBytes = parseSize(o.minRegion, '--min-region');
  const controller = new AbortController();
  const abort = (): void => controller.abort();
  process.once('SIGINT', abort);
  options.signal = controller.signal;

  const tty = process.stderr.isTTY === true && o.json !== true && o.progress !== false;
  let lastDraw = 0;
  if (tty) {
    options.onProgress = (p: EstimateProgress) => {
      const now = Date.now();
      if (now - lastDraw < 100 && (p.total === undefined || p.done < p.total)) return; // at most 10 redraws a second
      lastDraw = now;
      process.stderr.write(`\r\x1b[2K${progressLine(p)}`);
    };
  }
  let report: Obj | undefined;
  try {
    report = await runEstimate(pids, options as Obj & { onProgress?: (p: EstimateProgress) => void });
  } finally {
    process.off('SIGINT', abort);
    if (tty) process.stderr.write('\r\x1b[2K');
  }
  if (report === undefined) throw missingModule('estimate (lib/estimate.ts)', 5);
  if (o.json === true) {
    printJson({ kind: 'node-ksm/estimate', version: 1, pids, report } satisfies EstimateJson);
    return;
  }
  const c = colors(o);
  const processes = (Array.isArray(report.processes) ? report.processes : [report]) as Obj[];
  for (const p of processes) {
    const regions = (Array.isArray(p.regions) ? p.regions : Array.isArray(p.vmas) ? p.vmas : []) as Obj[];
    process.stdout.write(`${c.bold(`pid ${String(p.pid ?? '?')}`)}\n`);
    process.stdout.write(
      `${table(
        ['START-END', 'MAPPING', 'MG', 'CANDIDATE', 'ZERO', 'DUP IN VMA', 'DUP IN PROC', 'DUP ACROSS', 'VOLATILE', 'PREDICTED SAVED'],
        regions.map((r) => [
          `${typeof r.start === 'bigint' ? r.start.toString(16) : String(r.start)}-${typeof r.end === 'bigint' ? r.end.toString(16) : String(r.end)}`,
          String(r.pathname || r.kind || '[anon]'),
          r.mergeable === true ? 'yes' : r.mergeable === false ? 'no' : '-',
          formatCount(num(r.candidatePages)),
          formatCount(num(r.zeroPages)),
          formatCount(num(r.duplicatesWithinVma ?? r.dupWithinVma)),
          formatCount(num(r.duplicatesWithinProcess ?? r.dupWithinProcess)),
          formatCount(num(r.duplicatesAcrossProcesses ?? r.dupAcrossProcesses)),
          formatCount(num(r.volatilePages)),
          c.green(formatBytes(num(r.predictedSavedBytes))),
        ]),
        ['left', 'left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
      )}\n`,
    );
  }
  const total = (report.total ?? report.totals ?? {}) as Obj;
  process.stdout.write(`${c.bold('predicted saving')} ${c.green(formatBytes(num(total.predictedSavedBytes ?? report.predictedSavedBytes)))}\n`);
}

export function register(program: Command): void {
  program
    .command('estimate')
    .description('dry run: hash the pages of processes and predict, per VMA, what KSM would merge')
    .argument('<pid...>', 'processes to compare (duplicates across them count)')
    .option('--interval <duration>', 'sample twice this far apart to find volatile pages (e.g. 200ms)')
    .option('--only-mergeable', 'only VMAs already marked mergeable (mg)')
    .option('--min-region <size>', 'skip regions smaller than this (e.g. 1MiB)')
    .option('--no-progress', 'no progress line on stderr')
    .option('--json', 'print an EstimateJson document (see README)')
    .action(async (pids: string[], _options, command: Command) => {
      await runEstimateCommand(pids, command.optsWithGlobals<EstimateOptions>());
    });
}
