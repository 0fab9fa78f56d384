/** /proc/uptime: seconds since boot, the clock a task's start time is counted on. */
import * as path from 'node:path';

import { readTextOrUndefined } from './files.js';

/** Seconds since boot from `<root>/proc/uptime`; undefined where it cannot be read. */
export function readUptimeSeconds(root = '/'): number | undefined {
  const first = readTextOrUndefined(path.join(root, 'proc', 'uptime'))?.trim().split(/\s+/)[0];
  const seconds = Number(first);
  return first !== undefined && first !== '' && Number.isFinite(seconds) ? seconds : undefined;
}
