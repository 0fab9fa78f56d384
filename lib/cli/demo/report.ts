/**
 * What the demo prints: the live table (redrawn in place on a terminal),
 * one progress line per refresh elsewhere, and the summary.
 */
import type { DemoOutput, DemoSnapshot } from './types.js';

const MiB = 1024 * 1024;

export interface RenderContext {
  page: number;
  mapped: number;
  theoreticalSaving: number;
  fullScans: number;
}

export interface SummaryContext {
  workers: number;
  size: number;
  theoreticalSaving: number;
  settled: boolean;
  fullScans: number;
  intact: boolean;
}

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

function signedMib(bytes: number): string {
  return `${bytes >= 0 ? '+' : '-'}${mib(Math.abs(bytes))}`;
}

function signed(value: number): string {
  return `${value >= 0 ? '+' : ''}${value}`;
}

function pad(text: string | number, width: number): string {
  return String(text).padStart(width);
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

export function renderTable(snap: DemoSnapshot, ctx: RenderContext): string[] {
  const { system } = snap;
  const lines = [
    `t=${(snap.elapsedMs / 1000).toFixed(1)}s  full_scans ${String(system.fullScans)} ` +
      `(${snap.scansSinceWrite} since the last write; settled after ${ctx.fullScans})`,
    `  ${pad('pid', 8)} ${pad('merging_pages', 14)} ${pad('process_profit', 15)} ${pad('rmap_items', 11)} ` +
      `${pad('table KSM', 11)} ${pad('table PSS', 11)}`,
  ];
  for (const p of snap.processes) {
    const s = p.ksmStat;
    lines.push(
      `  ${pad(p.pid, 8)} ${pad(s.mergingPages ?? 'n/a', 14)} ` +
        `${pad(s.processProfit === undefined ? 'n/a' : mib(s.processProfit), 15)} ${pad(s.rmapItems ?? 'n/a', 11)} ` +
        `${pad(p.tableKsm === undefined ? 'n/a' : mib(p.tableKsm), 11)} ${pad(mib(p.tablePss), 11)}`,
    );
  }
  lines.push(
    `  machine: pages_sharing ${String(system.pagesSharing)} (${signed(snap.pagesSharingDelta)} pages, ` +
      `${signedMib(snap.pagesSharingDelta * ctx.page)}), general_profit ${mib(system.generalProfit ?? 0)} ` +
      `(${signedMib(snap.generalProfitDelta)}) since start`,
    `  saved: ${mib(snap.savedBytes)} of ${mib(ctx.theoreticalSaving)} theoretical (${percent(snap.savedRatio)})`,
  );
  return lines;
}

export function renderProgress(snap: DemoSnapshot, ctx: RenderContext): string {
  const merging = snap.processes.map((p) => p.ksmStat.mergingPages ?? 0);
  return (
    `t=${(snap.elapsedMs / 1000).toFixed(1)}s scans ${snap.scansSinceWrite}/${ctx.fullScans} ` +
    `merging_pages [${merging.join(', ')}] of ${ctx.mapped / ctx.page} each, ` +
    `pages_sharing ${signed(snap.pagesSharingDelta)}, ` +
    `saved ${mib(snap.savedBytes)} of ${mib(ctx.theoreticalSaving)} (${percent(snap.savedRatio)})`
  );
}

export function renderSummary(snap: DemoSnapshot, ctx: SummaryContext): string {
  const summed = snap.processes.reduce((sum, p) => sum + (p.ksmStat.processProfit ?? 0), 0);
  const pss = snap.processes.reduce((sum, p) => sum + p.tablePss, 0);
  const seconds = (snap.elapsedMs / 1000).toFixed(1);
  return [
    '',
    `summary: ${ctx.settled ? `settled in ${seconds} s (${ctx.fullScans} full scans after the last write)` : 'NOT settled before the timeout'}`,
    `  ${ctx.workers} workers held ${mib(ctx.workers * ctx.size)} of identical table; ` +
      `their table mappings now cost ${mib(pss)} (sum of PSS)`,
    `  saved: ${mib(snap.savedBytes)} of ${mib(ctx.theoreticalSaving)} theoretical (N-1) x size (${percent(snap.savedRatio)})`,
    `  machine-wide since start: pages_sharing ${signed(snap.pagesSharingDelta)} pages, ` +
      `general_profit ${signedMib(snap.generalProfitDelta)} (after KSM's rmap_item metadata; includes any other merging here)`,
    `  note: each worker's ksm_process_profit counts the copy that had to stay; summed they claim ${mib(summed)}, ` +
      'which is not the saving',
    `  copy-on-write: ${ctx.intact ? 'every worker read back its table intact' : 'A WORKER READ BACK A DIFFERENT TABLE'}`,
    '',
  ].join('\n');
}

/** The live view: on a terminal the table is redrawn in place, elsewhere one line per refresh. */
export class LiveView {
  private drawn = 0;

  constructor(
    private readonly output: DemoOutput,
    private readonly ctx: RenderContext,
  ) {}

  draw(snap: DemoSnapshot): void {
    if (this.output.isTTY === true) {
      const lines = renderTable(snap, this.ctx);
      this.output.write(`${this.erase()}${lines.join('\n')}\n`);
      this.drawn = lines.length;
    } else {
      this.output.write(`${renderProgress(snap, this.ctx)}\n`);
    }
  }

  /** The final table, in place of the live one. */
  final(snap: DemoSnapshot): void {
    this.output.write(`${this.output.isTTY === true ? this.erase() : ''}${renderTable(snap, this.ctx).join('\n')}\n`);
    this.drawn = 0;
  }

  private erase(): string {
    return this.drawn > 0 ? `\x1b[${this.drawn}F\x1b[J` : '';
  }
}
