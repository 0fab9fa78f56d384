/**
 * The addon's scan of smaps (native/smaps-scan.cc) as the VMAs smaps.ts
 * scan() makes of the same bytes.
 */
import type { NativeSmapsScan } from '../binding.js';
import { Summary, flagsOf, type SmapsScan, type SmapsSummary } from './smaps.js';

/**
 * The columns of the addon's scan (native/smaps-scan.h KSM_SMAPS_FIELDS), in
 * its order: the reader uses that scan only when the addon's own list
 * (smapsScanFields) is this one.
 */
export const NATIVE_SMAPS_FIELDS = [
  'inode', 'perms', 'dev', 'pathname', 'vmFlags', 'size', 'rss', 'pss', 'sharedClean', 'sharedDirty',
  'privateClean', 'privateDirty', 'anonymous', 'ksm', 'anonHugePages', 'swap',
] as const;
const NATIVE_COLUMNS = NATIVE_SMAPS_FIELDS.length;

/** Where a 64-bit integer's low and high 32-bit halves lie in memory on this machine. */
export const LOW = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1 ? 0 : 1;
export const HIGH = 1 - LOW;

/**
 * A figure of the scan (a double: it is read from a Float64Array) as V8
 * stores a number cheapest: a 32-bit integer becomes a small integer
 * (Smi), held in the object's own field; a double there is a 16-byte
 * HeapNumber of its own, a dozen per VMA (measured: 264 against 104 bytes
 * for a ten-figure object).
 */
export function smallInteger(x: number): number {
  const int = x | 0;
  return int === x ? int : x;
}

/**
 * The addon's scan of kernel-layout smaps (lib/kernel/smaps-reader.ts) as
 * the same VMAs scan() makes of the bytes: each distinct string decoded
 * once, as scan() decodes it (pathname trimmed, UTF-8; VmFlags split).
 * `copyFlags` false: the VMAs of one VmFlags line share its list (not
 * frozen: V8 copies a frozen array 30 times slower, and regions() copies
 * these), for callers that never change or hand out a VMA's list.
 */
export function fromNativeScan(native: NativeSmapsScan, copyFlags = true): SmapsScan {
  const { addresses, figures } = native;
  const strings = nativeStrings(native);
  // The same bytes as doubles: +0 exactly where an address is 0 (most offsets), which needs no new BigInt.
  const asDoubles = new Float64Array(addresses.buffer, addresses.byteOffset, addresses.length);
  const count = addresses.length / 3;
  const vmas: SmapsSummary[] = new Array<SmapsSummary>(count);
  for (let v = 0, f = 0; v < count; v++, f += NATIVE_COLUMNS) {
    const vma = new Summary(
      addresses[3 * v]!, addresses[3 * v + 1]!, strings.latin1(figures[f + 1]!), Object.is(asDoubles[3 * v + 2], 0) ? 0n : addresses[3 * v + 2]!,
      strings.latin1(figures[f + 2]!), smallInteger(figures[f]!), strings.path(figures[f + 3]!),
    );
    const flags = figures[f + 4]!;
    if (flags >= 0) vma.vmFlags = copyFlags ? strings.flags(flags).slice() : (strings.flags(flags) as string[]);
    let x = figures[f + 5]!;
    if (x >= 0) vma.size = smallInteger(x);
    if ((x = figures[f + 6]!) >= 0) vma.rss = smallInteger(x);
    if ((x = figures[f + 7]!) >= 0) vma.pss = smallInteger(x);
    if ((x = figures[f + 8]!) >= 0) vma.sharedClean = smallInteger(x);
    if ((x = figures[f + 9]!) >= 0) vma.sharedDirty = smallInteger(x);
    if ((x = figures[f + 10]!) >= 0) vma.privateClean = smallInteger(x);
    if ((x = figures[f + 11]!) >= 0) vma.privateDirty = smallInteger(x);
    if ((x = figures[f + 12]!) >= 0) vma.anonymous = smallInteger(x);
    if ((x = figures[f + 13]!) >= 0) vma.ksm = smallInteger(x);
    if ((x = figures[f + 14]!) >= 0) vma.anonHugePages = smallInteger(x);
    if ((x = figures[f + 15]!) >= 0) vma.swap = smallInteger(x);
    vmas[v] = vma;
  }
  return { vmas, skippedLines: 0, inOrder: scanInOrder(native) };
}

/**
 * Whether each VMA of the scan starts at or past the end of the one before
 * (what readSmaps()'s consistent() asks), from the addresses' 32-bit
 * halves: no BigInt read or compared.
 */
export function scanInOrder(native: Pick<NativeSmapsScan, 'addresses'>): boolean {
  const { addresses } = native;
  const halves = new Uint32Array(addresses.buffer, addresses.byteOffset, 2 * addresses.length);
  let lastEndHigh = 0;
  let lastEndLow = 0;
  for (let at = 0; at < halves.length; at += 6) {
    const startHigh = halves[at + HIGH]!;
    if (startHigh < lastEndHigh || (startHigh === lastEndHigh && halves[at + LOW]! < lastEndLow)) return false;
    lastEndHigh = halves[at + 2 + HIGH]!;
    lastEndLow = halves[at + 2 + LOW]!;
  }
  return true;
}

/** The column of each figure in the addon's scan, by SmapsSummary name. */
export const NATIVE_COLUMN = Object.fromEntries(NATIVE_SMAPS_FIELDS.map((name, i) => [name, i])) as Record<(typeof NATIVE_SMAPS_FIELDS)[number], number>;
export { NATIVE_COLUMNS };

/**
 * The strings of the addon's scan, each distinct one decoded once, as scan()
 * decodes it: perms and dev as latin1, the pathname trimmed and UTF-8, the
 * VmFlags split (one shared list per distinct line: copy it before handing
 * it out).
 */
export function nativeStrings(native: NativeSmapsScan): { latin1(id: number): string; path(id: number): string; flags(id: number): readonly string[] } {
  const { text, spans } = native;
  const u = new Uint8Array(text.buffer, text.byteOffset, text.byteLength);
  const latin1: (string | undefined)[] = [];
  const paths: (string | undefined)[] = [];
  const flagLists: (string[] | undefined)[] = [];
  return {
    latin1: (id) => (latin1[id] ??= text.toString('latin1', spans[2 * id], spans[2 * id + 1])),
    path: (id) => {
      let path = paths[id];
      if (path === undefined) {
        const from = spans[2 * id]!;
        let to = spans[2 * id + 1]!;
        while (to > from && (u[to - 1] === 32 || u[to - 1] === 13) /* space, CR */) to--;
        path = paths[id] = to > from ? text.toString('utf8', from, to) : '';
      }
      return path;
    },
    flags: (id) => (flagLists[id] ??= flagsOf(u, text, spans[2 * id]!, spans[2 * id + 1]!)),
  };
}
