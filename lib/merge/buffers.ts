/**
 * Mergeable memory: page-aligned Buffers of our own, and madvise over views
 * the caller already has. Only whole pages inside a view are advised.
 */
import type { NativeBinding, View } from '../binding.js';
import { KsmNotMergeableError, isSystemError, withHint, type UnmergeableMapping } from '../errors.js';
import { addLabel } from './labels.js';
import { overlapping } from '../kernel/smaps.js';
import { readOwnSmapsSync } from '../kernel/smaps-reader.js';
import { selfTarget } from '../kernel/target.js';
import { whyNotMergeable } from '../kernel/vma.js';
import { insideSensitive } from './security.js';
import { requireKsm } from '../kernel/support.js';
import { checkUnmergeOptions, enforceHeadroom, rangePreflight, type UnmergeOptions, type UnmergePreflight } from './headroom.js';
import { checkBoolean, checkLabel, checkOptions, checkSize, checkView, ownerOf } from '../validate.js';

export interface AllocOptions {
  /** Names the buffer in regions() and profit(). */
  label?: string;
  /**
   * Let transparent huge pages back the buffer (default false: it is advised
   * MADV_NOHUGEPAGE). ksmd splits every huge page before its 4 KiB pages can
   * merge, so under THP `always` huge pages buy nothing that lasts and cost
   * at first touch (BENCHMARKS.md, section 6).
   */
  hugePages?: boolean;
}

export interface MarkOptions {
  /** Names the range in regions() and profit(). */
  label?: string;
  /**
   * Read this process's smaps afterwards and throw when the kernel did not mark
   * the range (default true). The kernel ignores incompatible mappings
   * (shared, hugetlb, ...) without an error.
   */
  verify?: boolean;
}

/** The memory an advice covered: whole pages inside the view. */
export interface MergeableRange {
  address: bigint;
  /** Bytes, a multiple of pageSize(); 0 when the view holds no whole page. */
  length: number;
}

function madviseHint(error: unknown): unknown {
  if (!isSystemError(error)) return error;
  if (error.syscall === 'mmap') {
    // allocMergeable's own mapping: a different refusal from madvise's.
    return error.code === 'ENOMEM'
      ? withHint(error, 'the kernel refused the mapping: not enough memory or address space (overcommit policy, RLIMIT_AS, vm.max_map_count)')
      : error;
  }
  switch (error.code) {
    case 'EAGAIN':
      return withHint(error, 'the kernel ran short of memory for KSM metadata or for unmerging; retry later');
    case 'ENOMEM':
      return withHint(error, 'part of the range is not mapped, or the kernel is out of memory');
    case 'EPERM':
      return withHint(error, 'madvise is blocked by a seccomp filter or LSM policy');
    case 'EINVAL':
      return withHint(error, 'the kernel rejected the advice: is it built with CONFIG_KSM?');
    default:
      return error;
  }
}

// markMergeable() advice ends with the ArrayBuffer it was given: once that is
// collected, malloc hands its memory to the next allocation, which must not
// inherit the advice. One record per owner (native/advice.h), released here.
const ownerIds = new WeakMap<ArrayBufferLike, number>();
const released = new FinalizationRegistry<number>((id) => {
  try {
    requireKsm().releaseMergeable(id);
  } catch {
    // Nothing to tell from a finalizer: the addon is loaded, or there was no record.
  }
});

function adviseOwned(native: NativeBinding, view: View): MergeableRange {
  const owner = view instanceof ArrayBuffer ? view : view.buffer;
  const known = ownerIds.get(owner);
  const remember = (id: number): void => {
    if (known !== undefined || id === 0) return;
    ownerIds.set(owner, id);
    released.register(owner, id);
  };
  try {
    const { address, length, id } = native.adviseMergeable(view, known ?? 0);
    if (length > 0) remember(id);
    return { address, length };
  } catch (error) {
    const id = (error as { mergeableId?: unknown }).mergeableId;
    if (typeof id === 'number') remember(id);
    throw madviseHint(error);
  }
}

/** Bytes per page of this machine. */
export function pageSize(): number {
  return requireKsm().pageSize();
}

/**
 * A Buffer of exactly `size` bytes on its own private anonymous mapping
 * (rounded up to whole pages, starting on a page boundary), advised
 * MADV_MERGEABLE (and MADV_NOHUGEPAGE unless `hugePages`). The mapping is
 * unmapped when the Buffer (and every slice
 * of it) is garbage collected; its size is reported to V8 as external memory.
 *
 * @throws TypeError / RangeError for a bad size or label.
 * @throws KsmUnsupportedError where KSM is not available.
 * @throws SystemError ENOMEM from mmap, EAGAIN/EINVAL from madvise.
 */
export function allocMergeable(size: number, options?: AllocOptions): Buffer {
  checkSize('size', size);
  const opts = checkOptions<AllocOptions>(options);
  const label = checkLabel(opts.label);
  const hugePages = checkBoolean('options.hugePages', opts.hugePages) ?? false;
  const native = requireKsm();
  const advices = [native.constants.MADV_MERGEABLE];
  if (!hugePages) advices.push(native.constants.MADV_NOHUGEPAGE);
  let buffer: Buffer;
  try {
    buffer = native.alloc(size, advices);
  } catch (error) {
    throw madviseHint(error);
  }
  if (label !== undefined) {
    const { address } = native.viewRange(buffer);
    const page = BigInt(native.pageSize());
    const mapped = ((BigInt(size) + page - 1n) / page) * page;
    addLabel(buffer.buffer, address, address + mapped, label);
  }
  return buffer;
}

/**
 * Advises MADV_MERGEABLE on the whole pages inside `view`, never rounding
 * outward into memory the view does not cover, and (by default) checks in
 * this process's smaps that the kernel really marked them. Sensitive ranges
 * (markSensitive()) inside it stay unmergeable.
 *
 * The advice lasts as long as the ArrayBuffer behind `view` (that object, in
 * the thread that marked it): when it is garbage collected, or its thread
 * exits, the pages are advised MADV_UNMERGEABLE again, because malloc hands
 * freed memory to the next allocation, which must not inherit it. Not undone
 * where another live buffer's advice still covers the pages, nor under
 * merge-any (enableMerge()), which makes every mapping mergeable anyway. A
 * buffer transferred to another owner (structuredClone, postMessage) loses
 * the advice when its detached original is collected: mark the new object.
 * disableMerge() advises every live range again.
 *
 * @returns the covered range; `length` 0 when the view holds no whole page.
 * @throws TypeError for a non-view or a detached buffer.
 * @throws KsmNotMergeableError when the kernel ignored the advice.
 * @throws SystemError from madvise (EAGAIN, ENOMEM, EPERM, EINVAL).
 */
export function markMergeable(view: View, options?: MarkOptions): MergeableRange {
  checkView(view);
  const opts = checkOptions<MarkOptions>(options);
  const label = checkLabel(opts.label);
  const verify = checkBoolean('options.verify', opts.verify) ?? true;
  const native = requireKsm();
  const range = adviseOwned(native, view);
  if (range.length > 0 && verify) verifyMergeable(range);
  if (label !== undefined && range.length > 0) {
    addLabel(ownerOf(view), range.address, range.address + BigInt(range.length), label);
  }
  return range;
}

/** unmarkMergeable()'s result: the range, and the preflight when one was asked for. */
export interface UnmarkResult extends MergeableRange {
  /** With `dryRun` or `requireHeadroom`: what unmerging the range allocates. */
  preflight?: UnmergePreflight;
}

/**
 * Advises MADV_UNMERGEABLE on the whole pages inside `view`: merged pages
 * are copied back, so memory use rises by what they saved. The pages leave
 * the package's records too: disableMerge() does not advise them again.
 *
 * With `dryRun` nothing changes: the range that would be covered and the
 * preflight are returned. With `requireHeadroom` the call refuses, changing
 * nothing, when MemAvailable or the cgroup's headroom cannot cover the copies.
 *
 * @returns the covered range (with `preflight` when asked for).
 * @throws TypeError for a non-view or a detached buffer.
 * @throws KsmInsufficientMemoryError (ERR_KSM_INSUFFICIENT_MEMORY) with `requireHeadroom`.
 * @throws SystemError EAGAIN/ENOMEM when the kernel cannot allocate the copies.
 */
export function unmarkMergeable(view: View, options?: UnmergeOptions): UnmarkResult {
  checkView(view);
  const { dryRun, requireHeadroom } = checkUnmergeOptions(options);
  const native = requireKsm();
  if (!dryRun && !requireHeadroom) return unadvise(native, view);
  const page = native.pageSize();
  const { address, length } = native.viewRange(view);
  const big = BigInt(page);
  const start = ((address + big - 1n) / big) * big;
  const end = ((address + BigInt(length)) / big) * big;
  const covered = end > start ? { address: start, length: Number(end - start) } : { address: start, length: 0 };
  const preflight = rangePreflight(covered.address, covered.address + BigInt(covered.length), page);
  if (dryRun) return { ...covered, preflight };
  enforceHeadroom(`0x${start.toString(16)}-0x${end.toString(16)} (unmarkMergeable)`, preflight);
  return { ...unadvise(native, view), preflight };
}

/** MADV_UNMERGEABLE, and out of the package's records: disableMerge() does not advise it again. */
function unadvise(native: NativeBinding, view: View): MergeableRange {
  try {
    return native.unadviseMergeable(view);
  } catch (error) {
    throw madviseHint(error);
  }
}

function verifyMergeable(range: MergeableRange): void {
  const start = range.address;
  const end = start + BigInt(range.length);
  const { vmas } = readOwnSmapsSync(selfTarget());
  const offenders: UnmergeableMapping[] = overlapping(vmas, start, end)
    .filter((vma) => !vma.vmFlags.includes('mg') && !insideSensitive(vma.start, vma.end))
    .map((vma) => ({
      start: vma.start,
      end: vma.end,
      pathname: vma.pathname,
      vmFlags: vma.vmFlags,
      why: whyNotMergeable(vma),
    }));
  if (offenders.length > 0) {
    const first = offenders[0]!;
    throw new KsmNotMergeableError(
      `madvise(MADV_MERGEABLE) succeeded but the kernel did not mark ${offenders.length} mapping(s) ` +
        `(first: 0x${first.start.toString(16)}-0x${first.end.toString(16)}: ${first.why})`,
      offenders,
    );
  }
}
