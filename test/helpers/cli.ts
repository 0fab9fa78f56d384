/**
 * CLI test helpers: run the built `node-ksm` as a child process, and build
 * fixture trees (proc/ and sys/ under a temp dir) for --root.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ROOT } from './ksm.js';

export const BIN = path.join(ROOT, 'dist', 'cli', 'index.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node-ksm ...args` to completion; never rejects on a non-zero exit. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, NO_COLOR: '1', ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          if (error.killed) return reject(new Error(`node-ksm ${args.join(' ')} timed out\n${stderr}`));
          if (error.code !== undefined) return reject(error);
        }
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** Starts `node-ksm ...args` in the background. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface FixtureProcess {
  pid: number;
  comm: string;
  /** ksm_stat text; omitted: no file (kernel before 6.1). */
  ksmStat?: string;
  /** smaps text (smaps_rollup is derived from it); omitted: no smaps, so no fair share. */
  smaps?: string;
}

/**
 * One anonymous mergeable VMA as smaps prints it, `ksmKb` of it backed by KSM
 * pages that each have `mappers` mappers (so Pss counts them 1/mappers).
 */
export function smapsVma(start: number, sizeKb: number, ksmKb: number, mappers: number): string {
  const hex = (n: number): string => n.toString(16).padStart(12, '0');
  const pss = Math.round(sizeKb - ksmKb + ksmKb / mappers); // smaps prints whole kB
  return [
    `${hex(start)}-${hex(start + sizeKb * 1024)} rw-p 00000000 00:00 0 `,
    `Size:           ${sizeKb} kB`,
    'KernelPageSize:        4 kB',
    'MMUPageSize:           4 kB',
    `Rss:            ${sizeKb} kB`,
    `Pss:            ${pss} kB`,
    `Pss_Anon:       ${pss} kB`,
    'Pss_File:              0 kB',
    'Pss_Shmem:             0 kB',
    'Shared_Clean:          0 kB',
    `Shared_Dirty:   ${ksmKb} kB`,
    'Private_Clean:         0 kB',
    `Private_Dirty:  ${sizeKb - ksmKb} kB`,
    `Referenced:     ${sizeKb} kB`,
    `Anonymous:      ${sizeKb} kB`,
    `KSM:            ${ksmKb} kB`,
    'LazyFree:              0 kB',
    'AnonHugePages:         0 kB',
    'Swap:                  0 kB',
    'SwapPss:               0 kB',
    'Locked:                0 kB',
    'THPeligible:           0',
    'VmFlags: rd wr mr mw me ac sd mg ',
    '',
  ].join('\n');
}

function rollup(smaps: string): string {
  const sums = new Map<string, number>();
  for (const line of smaps.split('\n')) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m && m[1] !== 'KernelPageSize' && m[1] !== 'MMUPageSize') sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + Number(m[2]));
  }
  const lines = ['00400000-7fffffffffff ---p 00000000 00:00 0                          [rollup]'];
  for (const [key, kb] of sums) lines.push(`${key}: ${kb} kB`);
  return `${lines.join('\n')}\n`;
}

/** sysfs values a 6.18 machine shows, overridable. */
export const SYSFS_6_18: Record<string, string> = {
  run: '1',
  pages_to_scan: '1000',
  sleep_millisecs: '20',
  pages_shared: '1000',
  pages_sharing: '9000',
  pages_unshared: '3000',
  pages_volatile: '2000',
  pages_scanned: '500000',
  pages_skipped: '1000',
  full_scans: '42',
  general_profit: String(9000 * 4096 - 15000 * 64),
  ksm_zero_pages: '0',
  use_zero_pages: '0',
  smart_scan: '1',
  max_page_sharing: '256',
  merge_across_nodes: '1',
  stable_node_chains: '0',
  stable_node_dups: '0',
  stable_node_chains_prune_millisecs: '2000',
  advisor_mode: '[none] scan-time',
  advisor_target_scan_time: '200',
  advisor_max_cpu: '70',
  advisor_min_pages_to_scan: '500',
  advisor_max_pages_to_scan: '30000',
};

export function ksmStatText(fields: { rmap: number; zero: number; merging: number; profit: number; mergeAny: boolean; mergeable: boolean }): string {
  return (
    `ksm_rmap_items ${fields.rmap}\nksm_zero_pages ${fields.zero}\nksm_merging_pages ${fields.merging}\n` +
    `ksm_process_profit ${fields.profit}\nksm_merge_any: ${fields.mergeAny ? 'yes' : 'no'}\nksm_mergeable: ${fields.mergeable ? 'yes' : 'no'}\n`
  );
}

/** A temp dir holding sys/kernel/mm/ksm and proc/PID/{comm,ksm_stat}. */
export function makeKsmTree(sysfs: Record<string, string | undefined> = {}, processes: FixtureProcess[] = []): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-tree-'));
  const ksm = path.join(root, 'sys', 'kernel', 'mm', 'ksm');
  fs.mkdirSync(ksm, { recursive: true });
  for (const [name, value] of Object.entries({ ...SYSFS_6_18, ...sysfs })) {
    if (value !== undefined) fs.writeFileSync(path.join(ksm, name), `${value}\n`);
  }
  fs.mkdirSync(path.join(root, 'proc'), { recursive: true });
  for (const p of processes) {
    const dir = path.join(root, 'proc', String(p.pid));
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'comm'), `${p.comm}\n`);
    if (p.ksmStat !== undefined) fs.writeFileSync(path.join(dir, 'ksm_stat'), p.ksmStat);
    if (p.smaps !== undefined) {
      fs.writeFileSync(path.join(dir, 'smaps'), p.smaps);
      fs.writeFileSync(path.join(dir, 'smaps_rollup'), rollup(p.smaps));
    }
  }
  return root;
}

export function sysfsFile(root: string, name: string): string {
  return fs.readFileSync(path.join(root, 'sys', 'kernel', 'mm', 'ksm', name), 'utf8').trim();
}

export function writeSysfs(root: string, name: string, value: string | number): void {
  fs.writeFileSync(path.join(root, 'sys', 'kernel', 'mm', 'ksm', name), `${value}\n`);
}
