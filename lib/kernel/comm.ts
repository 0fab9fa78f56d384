/**
 * This process's name as the kernel keeps it (`/proc/self/comm`, at most 15
 * bytes): what `ps`, `top` and `node-ksm status` show. Setting
 * process.title renames it too (libuv calls PR_SET_NAME with the title).
 */
import * as fs from 'node:fs';

import { procPath } from './paths.js';

/** The process's comm, or undefined where /proc cannot tell. */
export function ownComm(): string | undefined {
  try {
    return fs.readFileSync(procPath('/', 'self', 'comm'), 'utf8').replace(/\n$/, '');
  } catch {
    return undefined;
  }
}

/** Renames the process (its main thread) back; false where /proc refuses. */
export function setOwnComm(name: string): boolean {
  try {
    fs.writeFileSync(procPath('/', 'self', 'comm'), name);
    return true;
  } catch {
    return false;
  }
}
