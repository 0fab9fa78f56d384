/**
 * Labels a process published for other processes' reports: one small JSON
 * file per process, named by its pid and tied to its start time (a later
 * process with the same pid never inherits them), in the first directory of
 * LABEL_DIRS the process could write. Readers look in the same places for the
 * target's uid, and trust a file only when the target's uid (or root) owns it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { readProcStat } from './stat.js';
import { readProcStatusIfReadable } from './status.js';

export interface PublishedLabel {
  start: bigint;
  end: bigint;
  label: string;
}

interface LabelFile {
  kind: 'node-ksm/labels';
  version: 1;
  pid: number;
  startTimeTicks: number;
  labels: Array<{ start: string; end: string; label: string }>;
}

/** A file larger than this is not a label file of ours. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const MAX_LABEL_LENGTH = 256;

/** Where a process of `uid` publishes, in the order it tries them. */
export function labelDirs(uid: number): string[] {
  return [
    path.join('/run', 'node-ksm', 'labels'),
    path.join('/run', 'user', String(uid), 'node-ksm', 'labels'),
    path.join(os.tmpdir(), `node-ksm-${uid}`, 'labels'),
  ];
}

function startTimeOf(root: string, pid: number | 'self'): number | undefined {
  try {
    return readProcStat(root, pid)?.startTimeTicks;
  } catch {
    return undefined;
  }
}

/**
 * Writes this process's labels where others can read them (atomically:
 * a temporary file renamed over the old one); the file written, or
 * undefined when no directory could take it.
 */
export function writeLabelFile(labels: readonly PublishedLabel[], previous: string | undefined): string | undefined {
  const startTimeTicks = startTimeOf('/', 'self');
  if (startTimeTicks === undefined) return undefined;
  const body: LabelFile = {
    kind: 'node-ksm/labels',
    version: 1,
    pid: process.pid,
    startTimeTicks,
    labels: labels.map((l) => ({ start: l.start.toString(16), end: l.end.toString(16), label: l.label })),
  };
  const text = JSON.stringify(body);
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const dirs = previous === undefined ? labelDirs(uid) : [path.dirname(previous), ...labelDirs(uid)];
  for (const dir of dirs) {
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      const file = path.join(dir, `${process.pid}.json`);
      const temporary = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(temporary, text, { mode: 0o644 });
      fs.renameSync(temporary, file);
      return file;
    } catch {
      // Not writable for this process: the next place.
    }
  }
  return undefined;
}

export function removeLabelFile(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // Already gone.
  }
}

function parseLabels(text: string, pid: number, startTimeTicks: number): PublishedLabel[] | undefined {
  let body: Partial<LabelFile>;
  try {
    body = JSON.parse(text) as Partial<LabelFile>;
  } catch {
    return undefined;
  }
  if (body.kind !== 'node-ksm/labels' || body.pid !== pid || body.startTimeTicks !== startTimeTicks || !Array.isArray(body.labels)) {
    return undefined;
  }
  const out: PublishedLabel[] = [];
  for (const entry of body.labels) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { start, end, label } = entry as { start?: unknown; end?: unknown; label?: unknown };
    if (typeof start !== 'string' || typeof end !== 'string' || typeof label !== 'string') continue;
    if (!/^[0-9a-f]{1,16}$/.test(start) || !/^[0-9a-f]{1,16}$/.test(end) || label.length === 0) continue;
    const s = BigInt(`0x${start}`);
    const e = BigInt(`0x${end}`);
    if (e > s) out.push({ start: s, end: e, label: label.slice(0, MAX_LABEL_LENGTH) });
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/**
 * The labels another process published, or [] when it published none (or
 * the file is stale, foreign or malformed). Only on this machine's /proc.
 * `euid`: the process's effective uid, where the caller read it already
 * (resolveTarget()). Most processes publish none, so the places are looked
 * at first (access(2), no error object made for a file that is not there)
 * and the process's start time is read only once a file is found.
 */
export function readLabelFile(root: string, pid: number, euid?: number): PublishedLabel[] {
  if (root !== '/') return [];
  const uid = euid ?? readProcStatusIfReadable(root, pid)?.euid;
  if (uid === undefined) return [];
  const files = labelDirs(uid)
    .map((dir) => path.join(dir, `${pid}.json`))
    .filter((file) => fs.existsSync(file));
  if (files.length === 0) return [];
  const startTimeTicks = startTimeOf(root, pid);
  if (startTimeTicks === undefined) return [];
  for (const file of files) {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch {
      continue;
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile() || stat.size > MAX_FILE_BYTES || (stat.uid !== uid && stat.uid !== 0)) continue;
      const labels = parseLabels(fs.readFileSync(fd, 'utf8'), pid, startTimeTicks);
      if (labels !== undefined) return labels;
    } catch {
      // Unreadable: the next place.
    } finally {
      fs.closeSync(fd);
    }
  }
  return [];
}
