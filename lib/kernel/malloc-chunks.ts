/**
 * Telling glibc's mmapped chunks by their headers with the addon: every
 * candidate VMA's next header read in one job on its reader thread (pagemap
 * first, so an absent page is never faulted in), a round per chunk along
 * the VMAs that hold several. A pagemap and a mem read per VMA through the
 * libuv pool cost ~30 us each: 4,096 candidate VMAs took half a second.
 */
import { startHeaderRead } from './files.js';
import { procPath } from './paths.js';
import { withDeadline } from './proc-read.js';
import type { ProcessTarget } from './target.js';
import { mmappedChunkSize, type LayoutVma } from './vma.js';

export const HEADER_BYTES = 16;

/** What the walk needs of a VMA. */
export type VmaBounds = Pick<LayoutVma, 'start' | 'end'>;

interface Walk {
  vma: VmaBounds;
  at: bigint;
  chunks: number;
}

/**
 * The candidate VMAs (by start) that mmapped chunks tile exactly, as
 * vma-evidence.ts tiledChunks() tells them one read at a time; undefined
 * where the addon has no such read. Stops at the deadline with what was
 * told by then; an unreadable process (no ptrace access) tells nothing.
 * `firstHeaders`: the candidates' first headers, read already (beside
 * their smaps scan).
 */
export async function readMallocChunksNative(
  target: ProcessTarget,
  candidates: readonly VmaBounds[],
  pageSize: number,
  maxChunksPerVma: number,
  deadlineMs: number,
  firstHeaders?: Buffer,
): Promise<Map<bigint, number> | undefined> {
  const dir = procPath(target.root, target.dir);
  // In the first round the candidates stand for their walks: a walk is made only of one a header goes on in.
  let walks: Walk[] | undefined;
  const started = firstHeaders !== undefined
    ? { promise: Promise.resolve(firstHeaders), abandon: () => {} }
    : startHeaderRead(dir, BigUint64Array.from(candidates, (vma) => vma.start));
  if (started === undefined) return undefined;
  let read = started;
  const out = new Map<bigint, number>();
  let stopped = false;
  const walk = async (): Promise<void> => {
    for (;;) {
      const headers = await read.promise;
      const next: Walk[] = [];
      const count = walks?.length ?? candidates.length;
      for (let i = 0; i < count; i++) {
        // Most candidates are no chunk: IS_MMAPPED (2) alone of the size's low bits, told without a BigInt.
        if ((headers[i * HEADER_BYTES + 8]! & 7) !== 2) continue;
        const w = walks !== undefined ? walks[i]! : { vma: candidates[i]!, at: candidates[i]!.start, chunks: 0 };
        const size = mmappedChunkSize(headers.subarray(i * HEADER_BYTES, (i + 1) * HEADER_BYTES), w.vma.end - w.at, pageSize);
        if (size === undefined) continue;
        w.at += size;
        w.chunks++;
        if (w.at === w.vma.end) out.set(w.vma.start, w.chunks);
        else if (w.chunks < maxChunksPerVma) next.push(w);
      }
      walks = next;
      if (walks.length === 0 || stopped) return;
      read = startHeaderRead(dir, BigUint64Array.from(walks, (w) => w.at))!;
    }
  };
  const walking = walk();
  try {
    await withDeadline(walking, deadlineMs, () => new Error('deadline'));
  } catch {
    // The mmap lock is held past the deadline (what was told stands), or the
    // process cannot be read (no ptrace access): its chunks are not told.
    stopped = true;
    read.abandon();
    void walking.catch(() => undefined);
  }
  return new Map(out);
}
