/** `node-ksm doctor [--pid N]`: why nothing merges, with the fix; exit code 1 on any error finding. */
import type { Command } from 'commander';

import { doctorFindings, missingModule } from '../adapters.js';
import type { DoctorJson } from './json.js';
import { colors, parseInteger, printJson, type GlobalOptions } from './output.js';

interface DoctorOptions extends GlobalOptions {
  pid?: string;
}

export async function runDoctor(o: DoctorOptions): Promise<void> {
  const pid = o.pid === undefined ? undefined : parseInteger(o.pid, '--pid', 1, 4194304);
  const options: { pid?: number; root?: string } = {};
  if (pid !== undefined) options.pid = pid;
  if (o.root !== undefined && o.root !== '/') options.root = o.root;
  const findings = await doctorFindings(options);
  if (findings === undefined) throw missingModule('doctor (lib/doctor.ts)', 4);
  const counts = { error: 0, warn: 0, info: 0 };
  for (const f of findings) counts[f.severity]++;
  if (o.json === true) {
    printJson({
      kind: 'node-ksm/doctor',
      version: 1,
      pid: pid ?? null,
      findings: findings.map((f) => ({ ...f, fix: f.fix ?? null })),
      counts,
    } satisfies DoctorJson);
  } else {
    const c = colors(o);
    const order = { error: 0, warn: 1, info: 2 } as const;
    const paint = { error: c.red, warn: c.yellow, info: c.cyan } as const;
    for (const f of [...findings].sort((a, b) => order[a.severity] - order[b.severity])) {
      process.stdout.write(`${paint[f.severity](f.severity.toUpperCase().padEnd(5))} ${c.bold(f.code)}  ${f.message}\n`);
      if (f.evidence !== undefined && f.evidence !== null) {
        process.stdout.write(`      ${c.dim(`evidence: ${typeof f.evidence === 'string' ? f.evidence : JSON.stringify(f.evidence, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`)}\n`);
      }
      if (f.fix !== undefined) process.stdout.write(`      fix: ${c.green(f.fix)}\n`);
    }
    process.stdout.write(`${counts.error} error, ${counts.warn} warning, ${counts.info} info\n`);
  }
  if (counts.error > 0) process.exitCode = 1;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('explain why nothing merges (or what could be better), with the exact fix; exit code 1 on any error')
    .option('--pid <pid>', 'also examine this process')
    .option('--json', 'print a DoctorJson document (see README)')
    .action(async (_options, command: Command) => {
      await runDoctor(command.optsWithGlobals<DoctorOptions>());
    });
}
