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

/** `<pid>.json`: a label file; `<pid>.json.<writer>.tmp`: one being written (writeLabelFile()), left where its writer died before the rename. */
const LABEL_FILE = /^([1-9][0-9]{0,9})\.json$/;
const TEMPORARY_FILE = /^[1-9][0-9]{0,9}\.json\.([1-9][0-9]{0,9})\.tmp$/;

/**
 * A label file's text and owner, undefined where it cannot be one: not
 * openable without following a symlink, not a plain file, past
 * MAX_FILE_BYTES, or unreadable.
 */
function readCandidate(file: string): { text: string; uid: number } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile() || stat.size > MAX_FILE_BYTES) return undefined;
    return { text: fs.readFileSync(fd, 'utf8'), uid: stat.uid };
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** The start time a label file's text names, undefined where it names none. */
function startTimeNamed(text: string): number | undefined {
  try {
    const body = JSON.parse(text) as Partial<LabelFile>;
    return typeof body.startTimeTicks === 'number' ? body.startTimeTicks : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the label file `name` in `dir` has no live process behind it (never this process's own). */
function staleLabelFile(dir: string, name: string, euid: number): boolean {
  const file = path.join(dir, name);
  const temporary = TEMPORARY_FILE.exec(name);
  const pid = Number((temporary ?? LABEL_FILE.exec(name))?.[1] ?? NaN);
  if (!Number.isInteger(pid) || pid === process.pid) return false;
  const stat = fs.lstatSync(file, { throwIfNoEntry: false });
  // Only plain files of this euid: another uid's (or a symlink put there) are not ours to remove.
  if (stat === undefined || !stat.isFile() || stat.uid !== euid) return false;
  const live = startTimeOf('/', pid);
  // A temporary is stale once its writer is gone; a writer with its pid now may be writing it.
  if (temporary !== null || live === undefined) return live === undefined;
  // Of an earlier process with this pid: it names another start time (one it cannot be read of, or too large, is left).
  const read = readCandidate(file);
  const named = read === undefined ? undefined : startTimeNamed(read.text);
  return named !== undefined && named !== live;
}

/**
 * Removes the label files in `dir` that no live process stands behind: of a
 * pid no process has now, or that names an earlier process with that pid
 * (another start time), and temporaries whose writer is gone. A process
 * publishing its labels removes its file at exit, but a SIGTERM or SIGKILL
 * ends it without 'exit': the next publisher of the same directory clears
 * what such processes left (publishLabels()). Only plain files this
 * process's euid owns, never its own.
 *
 * @returns the files removed.
 */
export function pruneLabelFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  const removed: string[] = [];
  for (const name of names) {
    try {
      if (!staleLabelFile(dir, name, euid)) continue;
      fs.unlinkSync(path.join(dir, name));
      removed.push(path.join(dir, name));
    } catch {
      // Gone meanwhile, or not ours to remove.
    }
  }
  return removed;
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
    // Unreadable, or another uid's (neither the process's nor root's): the next place.
    const read = readCandidate(file);
    if (read === undefined || (read.uid !== uid && read.uid !== 0)) continue;
    const labels = parseLabels(read.text, pid, startTimeTicks);
    if (labels !== undefined) return labels;
  }
  return [];
}
