/**
 * /proc/PID/status: `Key:\tvalue` lines. The only parser of it; reading it
 * takes no lock another process can hold for long.
 */
import { readText, readTextOrUndefined } from './files.js';
import { procPath } from './paths.js';

export interface ProcStatus {
  /** The thread group (process) this task belongs to: a thread's Tgid is its process's pid. */
  tgid: number | undefined;
  ppid: number | undefined;
  /** Effective uid (the second of the four Uid figures). */
  euid: number | undefined;
  /** 0 off, 1 strict, 2 filter. */
  seccomp: number | undefined;
  seccompFilters: number | undefined;
  noNewPrivs: number | undefined;
  /** `Kthread: 1` (6.3+): a kernel thread, with no user memory; undefined on older kernels. */
  kernelThread: boolean | undefined;
  /** Every line, raw, by key. */
  fields: Map<string, string>;
}

export function parseProcStatus(text: string): ProcStatus {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const number = (key: string, index = 0): number | undefined => {
    const value = Number(fields.get(key)?.split(/\s+/)[index]);
    return fields.has(key) && Number.isSafeInteger(value) ? value : undefined;
  };
  return {
    tgid: number('Tgid'),
    ppid: number('PPid'),
    euid: number('Uid', 1),
    seccomp: number('Seccomp'),
    seccompFilters: number('Seccomp_filters'),
    noNewPrivs: number('NoNewPrivs'),
    kernelThread: fields.has('Kthread') ? number('Kthread') === 1 : undefined,
    fields,
  };
}

/** /proc/PID/status parsed; throws the system error of the read. */
export function readProcStatus(root: string, pid: number | 'self'): ProcStatus {
  return parseProcStatus(readText(procPath(root, pid, 'status')));
}

/** The same, undefined when it cannot be read. */
export function readProcStatusIfReadable(root: string, pid: number | 'self'): ProcStatus | undefined {
  const text = readTextOrUndefined(procPath(root, pid, 'status'));
  return text === undefined ? undefined : parseProcStatus(text);
}
