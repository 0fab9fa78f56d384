// What the figures were taken on: cores, kernel, THP, KSM knobs, and who
// else was using the machine.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { THP, readChoice, readKnob, savedMachineKnobs } from './knobs.mjs';

function version(file, args) {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return undefined;
  }
}

/** Other processes that look like test runs or KSM users (not ours). */
export function otherActivity() {
  const mine = new Set([process.pid, process.ppid]);
  let vitest = 0;
  let mergeAny = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || mine.has(Number(entry))) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('vitest')) vitest += 1;
      const stat = fs.readFileSync(`/proc/${entry}/ksm_stat`, 'utf8');
      if (/ksm_merge_any:\s*yes/.test(stat) || /ksm_mergeable:\s*yes/.test(stat)) mergeAny += 1;
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return { vitest, ksmUsers: mergeAny };
}

export function machine() {
  const cpus = os.cpus();
  // While test runs hold KSM, the machine's own knobs are the ones they saved.
  const saved = savedMachineKnobs();
  const knobs = {};
  for (const name of ['run', 'pages_to_scan', 'sleep_millisecs', 'advisor_mode', 'use_zero_pages', 'smart_scan', 'max_page_sharing', 'merge_across_nodes']) {
    knobs[name] = saved?.[name] ?? readKnob(name);
  }
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model?.trim(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    arch: os.arch(),
    thpEnabled: readChoice(THP),
    thpDefrag: readChoice('/sys/kernel/mm/transparent_hugepage/defrag'),
    knobs,
    node: process.version,
    python: version('python3', ['--version']),
    cc: version('cc', ['--version'])?.split('\n')[0],
  };
}
