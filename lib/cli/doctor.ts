/** `node-ksm doctor [--pid N]`: why nothing merges, with the fix; exit code 1 on any error finding. */
import type { Command } from 'commander';

import { doctor, type DoctorOptions, type Finding } from '../doctor/index.js';
import type { DoctorJson } from './json.js';
import { colors, parseDuration, parseInteger, printJson, printable, type Colors, type GlobalOptions } from './output.js';

interface DoctorCliOptions extends GlobalOptions {
  pid?: string;
  handlesSecrets?: boolean;
  targetScanTime?: string;
}

function evidenceLine(f: Finding): string {
  return f.evidence
    .map((e) => `${e.key}=${String(e.value)}${e.unit === undefined ? '' : ` ${e.unit}`}${e.source === 'computed' ? ' (computed)' : ` (${e.source})`}`)
    .join(', ');
}

/**
 * Findings for a person. Messages, evidence and fixes quote mapping paths,
 * cgroup paths and values read from /proc and /sys: every piece is passed
 * through printable() before it is coloured.
 */
export function renderFindings(findings: Finding[], c: Colors): string {
  const paint = { error: c.red, warn: c.yellow, info: c.cyan } as const;
  const p = printable;
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${paint[f.severity](f.severity.toUpperCase().padEnd(5))} ${c.bold(p(f.code))}  ${p(f.message)}`);
    if (f.evidence.length > 0) lines.push(`      ${c.dim(`evidence: ${p(evidenceLine(f))}`)}`);
    if (f.fix !== undefined) {
      lines.push(`      fix: ${p(f.fix.summary)}`);
      for (const command of f.fix.commands) lines.push(`        ${c.green(p(command))}`);
      if (f.fix.call !== undefined) lines.push(`        ${c.green(p(f.fix.call))}`);
      for (const line of f.fix.persist ?? []) lines.push(`        ${c.dim(p(line))}`);
    }
    for (const alt of f.alternatives) {
      lines.push(`      or: ${p(alt.summary)}`);
      for (const command of alt.commands) lines.push(`        ${c.green(p(command))}`);
    }
  }
  const counts = { error: 0, warn: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  lines.push(`${counts.error} error, ${counts.warn} warning, ${counts.info} info`);
  return lines.join('\n');
}

export async function runDoctor(o: DoctorCliOptions): Promise<void> {
  const options: DoctorOptions = {};
  const pid = o.pid === undefined ? undefined : parseInteger(o.pid, '--pid', 1, 4194304);
  if (pid !== undefined) options.pid = pid;
  if (o.root !== undefined && o.root !== '/') options.root = o.root;
  if (o.handlesSecrets === true) options.handlesSecrets = true;
  if (o.targetScanTime !== undefined) options.targetScanTimeSec = parseDuration(o.targetScanTime, '--target-scan-time');
  const findings = await doctor(options);
  const counts = { error: 0, warn: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  if (o.json === true) {
    const json: DoctorJson = { kind: 'node-ksm/doctor', version: 1, pid: pid ?? null, findings, counts };
    printJson(json);
  } else {
    process.stdout.write(`${renderFindings(findings, colors(o))}\n`);
  }
  if (counts.error > 0) process.exitCode = 1;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('explain why nothing merges (or what could be better), with the exact fix; exit code 1 on any error')
    .option('--pid <pid>', 'the process to examine (default: the doctor itself, i.e. the machine)')
    .option('--handles-secrets', 'the process handles secrets: report merging as a side-channel risk')
    .option('--target-scan-time <duration>', 'the full-scan time SCAN_TOO_SLOW measures against (default 120s)')
    .option('--json', 'print a DoctorJson document (see README)')
    .action(async (_options, command: Command) => {
      await runDoctor(command.optsWithGlobals<DoctorCliOptions>());
    });
}
