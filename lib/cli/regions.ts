/** `node-ksm regions <pid>`: the per-VMA table of the profit report, labels included. */
import type { Command } from 'commander';

import { missingModule, profitReport } from '../adapters.js';
import type { RegionsJson } from './json.js';
import { colors, formatBytes, parseInteger, printJson, table, type GlobalOptions } from './output.js';

type Obj = Record<string, unknown>;

const bytes = (value: unknown): string =>
  formatBytes(typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : undefined);

function hex(value: unknown): string {
  return typeof value === 'bigint' ? value.toString(16) : typeof value === 'number' ? value.toString(16) : String(value ?? '-');
}

interface RegionsOptions extends GlobalOptions {
  exact?: boolean;
  all?: boolean;
}

export async function runRegions(pidText: string, o: RegionsOptions): Promise<void> {
  const pid = parseInteger(pidText, 'pid', 1, 4194304);
  const options: { exact?: boolean; root?: string } = { root: o.root ?? '/' };
  if (o.exact === true) options.exact = true;
  const report = await profitReport(pid, options);
  if (report === undefined) throw missingModule('regions/profit (lib/profit.ts)', 3);
  if (o.json === true) {
    printJson({ kind: 'node-ksm/regions', version: 1, pid, report } satisfies RegionsJson);
    return;
  }
  const c = colors(o);
  const regions = (Array.isArray(report.regions) ? report.regions : []) as Obj[];
  // By default only what KSM touches: mergeable, merged or labelled regions.
  const shown = o.all === true ? regions : regions.filter((r) => r.mergeable === true || Number(r.mergedBytes ?? 0) > 0 || typeof r.label === 'string');
  process.stdout.write(
    `${table(
      ['START-END', 'KIND', 'MAPPING', 'LABEL', 'SIZE', 'MERGED', 'SAVED', 'NET'],
      shown.map((r) => [
        `${hex(r.start)}-${hex(r.end)}`,
        String(r.kind ?? ''),
        String(r.pathname ?? ''),
        typeof r.label === 'string' ? c.cyan(r.label) : '',
        bytes(r.size),
        bytes(r.mergedBytes),
        c.green(bytes(r.savedBytes)),
        bytes(r.netBytes),
      ]),
      ['left', 'left', 'left', 'left', 'right', 'right', 'right', 'right'],
    )}\n`,
  );
  const total = (report.total ?? report.totals ?? {}) as Obj;
  process.stdout.write(
    `${c.bold('total')}  merged ${bytes(total.mergedBytes)}  saved ${c.green(bytes(total.savedBytes))}` +
      `  net ${bytes(total.netBytes)}${typeof report.method === 'string' ? ` (${report.method})` : ''}  (${shown.length} of ${regions.length} regions shown${o.all === true ? '' : '; --all for every one'})\n`,
  );
}

export function register(program: Command): void {
  program
    .command('regions')
    .description("per-VMA table of a process's profit report: what merged, what each region saved, labels included")
    .argument('<pid>', 'process id')
    .option('--exact', 'fair share page by page from pagemap/kpageflags (root)')
    .option('--all', 'every region, not only mergeable / merged / labelled ones')
    .option('--json', 'print a RegionsJson document (see README)')
    .action(async (pid: string, _options, command: Command) => {
      await runRegions(pid, command.optsWithGlobals<RegionsOptions>());
    });
}
