/**
 * The one reader of a process's smaps (and of its maps, the same VMAs
 * without figures). Everything that needs a process's VMAs (regions,
 * profit, estimate, doctor, buffer checks, unmerge preflights) reads them
 * here, as one VMA type (SmapsSummary).
 *
 * Torn reads: the kernel prints smaps a page at a time, dropping the mmap
 * lock in between and resuming after the last address it printed, so a VMA
 * that grew or merged meanwhile comes out overlapping the one before it (a
 * process that maps and unmaps all the time shows it). Such a read is made
 * again, up to three times; after the last, a VMA overlapping its
 * predecessor is left out (it was printed twice, once before and once after
 * the change) and `torn` says so.
 *
 * The summary figures are scanned on the addon's reader thread as it reads
 * (smaps-native.ts); readSmapsAllFields(), without the addon, and
 * bytes out of the kernel's layout are scanned here.
 */
import { procReadError } from './errno.js';
import { readBytes, scansSmaps, type ScanReads } from './files.js';
import { procPath } from './paths.js';
import type { NativeSmapsScan } from '../binding.js';
import { readProcFile, readProcSmaps } from './proc-read.js';
import { scan, type SmapsHeader, type SmapsScan, type SmapsSummary, type SmapsVma } from './smaps.js';
import { NATIVE_SMAPS_FIELDS, fromNativeScan } from './smaps-native.js';
import type { ProcessTarget } from './target.js';

export interface SmapsRead<V extends SmapsHeader = SmapsSummary> {
  vmas: V[];
  /** Lines that matched no known shape (0 for the kernel's own output). */
  skippedLines: number;
  /** The last read was still torn: overlapping VMAs were left out. */
  torn: boolean;
  /** Reads made (1 unless torn). */
  attempts: number;
}

const ATTEMPTS = 3;

/** VMAs in address order with none overlapping, and whether any had to be left out. */
function consistent<V extends SmapsHeader>(read: { vmas: V[] }): { vmas: V[]; dropped: boolean } {
  const all = read.vmas;
  let first = 1; // the first VMA that starts below the end of the one before
  while (first < all.length && all[first]!.start >= all[first - 1]!.end) first++;
  if (first >= all.length) return { vmas: all, dropped: false }; // the common case: no copy
  const vmas = all.slice(0, first);
  for (let i = first; i < all.length; i++) if (all[i]!.start >= vmas[vmas.length - 1]!.end) vmas.push(all[i]!);
  return { vmas, dropped: vmas.length !== all.length };
}

/**
 * Attempt `attempt`'s VMAs as the read's result: whole, or, torn on the last
 * attempt, with the overlapping ones left out; undefined: read again.
 * `inOrder`: the maker saw each VMA start at or past the end of the one
 * before (consistent() would keep them all), checked without BigInts.
 */
function settled<V extends SmapsHeader>(read: { vmas: V[]; skippedLines: number; inOrder?: boolean }, attempt: number): SmapsRead<V> | undefined {
  const { vmas, dropped } = read.inOrder === true ? { vmas: read.vmas, dropped: false } : consistent(read);
  if (!dropped) return { vmas, skippedLines: read.skippedLines, torn: false, attempts: attempt };
  if (attempt >= ATTEMPTS) return { vmas, skippedLines: read.skippedLines, torn: true, attempts: attempt };
  return undefined;
}

/** The addon's scan as VMAs (`copyFlags` as fromNativeScan()), or the bytes scanned here (no addon, or not the kernel's layout). */
function scanned(read: Buffer | NativeSmapsScan, copyFlags = true): SmapsScan {
  return Buffer.isBuffer(read) ? scan(read, false) : fromNativeScan(read, copyFlags);
}

/**
 * A process's smaps, read off the event loop and scanned.
 * `sharedFlags`: VMAs with the same VmFlags line may share one list
 * (a list less per VMA: 10,000 VMAs, 1 MB less for the young generation to
 * copy), for callers that never change or hand out a VMA's list (profit()).
 * `reads`: what is read beside the scan (files.ts ScanReads: chunk
 * headers, exact attribution); `onScan` is given each scan and the VMAs
 * made of it.
 *
 * @throws KsmNoSuchProcessError when the process is gone.
 * @throws KsmTimeoutError past `deadlineMs` (its mmap lock is held).
 * @throws SystemError EACCES (with a hint) for another user's process.
 */
export async function readSmaps(target: ProcessTarget, deadlineMs?: number, sharedFlags = false, reads?: ScanReadsWanted): Promise<SmapsRead> {
  return readSmapsInto(target, (read) => {
    const made = scanned(read, !sharedFlags);
    if (reads !== undefined && !Buffer.isBuffer(read)) reads.onScan(read, made.vmas);
    return made;
  }, deadlineMs, reads);
}

/** Whether readSmaps() and readSmapsInto() are scanned by the addon, with what they ask to be read beside (ScanReads). */
export function smapsScannedNatively(): boolean {
  return scansSmaps(NATIVE_SMAPS_FIELDS);
}

/** What a read of smaps reads beside its scan, and who is given each scan they come with (and the VMAs made of it). */
export interface ScanReadsWanted extends ScanReads {
  onScan(scan: NativeSmapsScan, vmas: SmapsSummary[]): void;
}

/**
 * A process's VMAs from /proc/PID/maps: smaps' header lines, no figures and
 * no VmFlags (empty lists), and no walk of the page tables behind them, so
 * a fraction of smaps' cost for a process with much memory. Torn reads as
 * readSmaps().
 */
export async function readMaps(target: ProcessTarget, deadlineMs?: number): Promise<SmapsRead> {
  return readScannedHere(target, 'maps', false, deadlineMs);
}

/** readSmaps() keeping every field the kernel printed (`fields`), for doctor's evidence. */
export async function readSmapsAllFields(target: ProcessTarget, deadlineMs?: number): Promise<SmapsRead<SmapsVma>> {
  return readScannedHere(target, 'smaps', true, deadlineMs) as Promise<SmapsRead<SmapsVma>>;
}

/** `file` read off the event loop and scanned here (scan()), torn reads made again. */
async function readScannedHere(target: ProcessTarget, file: 'smaps' | 'maps', allFields: boolean, deadlineMs: number | undefined): Promise<SmapsRead> {
  for (let attempt = 1; ; attempt++) {
    const read = settled(scan(await readProcFile(target, file, deadlineMs), allFields), attempt);
    if (read !== undefined) return read;
  }
}

/**
 * readSmaps() with the VMAs made by `make` from what the reader delivers:
 * the addon's scan, or the bytes (no addon, or not the kernel's layout).
 * For a report that builds its own rows straight from the scan's columns
 * (regions()), rather than from VMAs it would then copy; `reads` as
 * readSmaps()'s, the scan handed to `make`.
 */
export async function readSmapsInto<V extends SmapsHeader>(
  target: ProcessTarget,
  make: (read: Buffer | NativeSmapsScan) => { vmas: V[]; skippedLines: number; inOrder?: boolean },
  deadlineMs?: number,
  reads?: ScanReads,
): Promise<SmapsRead<V>> {
  for (let attempt = 1; ; attempt++) {
    const read = settled(make(await readProcSmaps(target, NATIVE_SMAPS_FIELDS, deadlineMs, reads)), attempt);
    if (read !== undefined) return read;
  }
}

/**
 * The same, synchronously: only for this process's own smaps (checking what
 * the kernel made of an madvise just done), whose mmap lock no other process
 * holds for long.
 */
export function readOwnSmapsSync(target: ProcessTarget): SmapsRead {
  for (let attempt = 1; ; attempt++) {
    let read: SmapsScan;
    try {
      read = scan(readBytes(procPath(target.root, target.dir, 'smaps')), false);
    } catch (error) {
      throw procReadError(error, target.pid);
    }
    const result = settled(read, attempt);
    if (result !== undefined) return result;
  }
}
