/** `node-ksm regions <pid>`: the per-VMA table of the profit report, labels included. */
import type { Command } from 'commander';

import { profit, type ProfitOptions, type RegionProfit } from '../report/profit/index.js';
import type { RegionsJson } from './json.js';
import { colors, formatBytes, parseInteger, printJson, printable, table, type GlobalOptions } from './output.js';

interface RegionsOptions extends GlobalOptions {
  exact?: boolean;
  estimated?: boolean;
  all?: boolean;
}

function mapping(region: RegionProfit): string {
  return region.pathname === '' ? `[${region.kind}]` : printable(region.pathname);
}

export async function runRegions(pidText: string, o: RegionsOptions): Promise<void> {
  const pid = parseInteger(pidText, 'pid', 1, 4194304);
  const options: ProfitOptions = {};
  if (o.root !== undefined && o.root !== '/') options.root = o.root;
  if (o.exact === true) options.exact = true;
  if (o.estimated === true) options.exact = false;
  const report = await profit(pid, options);
  if (o.json === true) {
    printJson({ kind: 'node-ksm/regions', version: 1, pid: report.pid, report } satisfies RegionsJson);
    return;
  }
  const c = colors(o);
  // profit() lists the regions KSM scans (mg) or that hold KSM pages; --all keeps empty ones.
  const shown = o.all === true ? report.regions : report.regions.filter((r) => r.mergedBytes > 0 || r.label !== undefined);
  const lines = [
    table(
      ['START-END', 'KIND', 'MAPPING', 'LABEL', 'MG', 'SIZE', 'MERGED', 'SAVED', 'METADATA', 'NET'],
      shown.map((r) => [
        `${r.start.toString(16)}-${r.end.toString(16)}`,
        r.kind,
        mapping(r),
        r.label === undefined ? '' : c.cyan(printable(r.label)),
        r.mergeable ? 'yes' : 'no',
        formatBytes(r.size),
        formatBytes(r.mergedBytes),
        c.green(formatBytes(r.savedBytes)),
        formatBytes(r.metadataBytes),
        formatBytes(r.netBytes),
      ]),
      ['left', 'left', 'left', 'left', 'left', 'right', 'right', 'right', 'right', 'right'],
    ),
    `${c.bold('total')}  merged ${formatBytes(report.total.mergedBytes)}  saved ${c.green(formatBytes(report.total.savedBytes))}  ` +
      `metadata ${formatBytes(report.total.metadataBytes)}  net ${formatBytes(report.total.netBytes)}  ` +
      `(${report.method}${report.estimateReason === undefined ? '' : `: ${report.estimateReason}`})`,
    c.dim(report.reconciliation.explanation),
    c.dim(`${shown.length} of ${report.regions.length} regions${o.all === true ? '' : ' (merged or labelled; --all for every one)'}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function register(program: Command): void {
  program
    .command('regions')
    .description("per-VMA table of a process's profit report: what merged, what each region saved, labels included")
    .argument('<pid>', 'process id')
    .option('--exact', 'insist on page-by-page attribution from pagemap/kpageflags (root; default where possible)')
    .option('--estimated', 'estimate from smaps Pss even as root (cheaper)')
    .option('--all', 'every region profit() reports, not only merged or labelled ones')
    .option('--json', 'print a RegionsJson document (see README)')
    .action(async (pid: string, _options, command: Command) => {
      await runRegions(pid, command.optsWithGlobals<RegionsOptions>());
    });
}
