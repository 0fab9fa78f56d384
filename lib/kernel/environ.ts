/**
 * /proc/PID/environ: the environment a process was started with (what it
 * changed later is not there). Read through proc-read.ts: the kernel copies
 * it out of the process's memory under its mmap lock.
 */
import { readProcFile } from './proc-read.js';
import type { ProcessTarget } from './target.js';

/** The value of `name` in the process's starting environment: undefined when unset, null when unreadable. */
export async function readEnvironValue(target: ProcessTarget, name: string, deadlineMs?: number): Promise<string | undefined | null> {
  let data: Buffer;
  try {
    data = await readProcFile(target, 'environ', deadlineMs);
  } catch {
    return null;
  }
  const prefix = `${name}=`;
  for (const entry of data.toString('latin1').split('\0')) if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  return undefined;
}
