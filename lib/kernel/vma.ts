/**
 * What a VMA is, from its smaps header and VmFlags alone: its kind, whether
 * KSM can take it (and why not), and whether it holds only anonymous data.
 * One classification for regions(), estimate() and doctor(); pure functions,
 * so either smaps VMA type (SmapsVma, SmapsSummary) fits.
 */
import type { SmapsHeader } from './smaps.js';

/**
 * What a VMA is, as far as /proc tells:
 * - `heap`, `stack`, `vdso`, `vvar`, `vsyscall`: the kernel's named areas,
 * - `file`: a file mapping (shared libraries, mmapped files),
 * - `shared-memory`: shmem, SysV, memfd and /dev/zero shared mappings (never mergeable),
 * - `named-anonymous`: anonymous memory named with PR_SET_VMA_ANON_NAME (`[anon:name]`),
 * - `jit-code`: anonymous executable memory; in Node that is V8's code space
 *   (JIT and wasm code), since only a JIT maps anonymous memory executable,
 * - `reserved`: anonymous address space with no access (`---p`): guard pages
 *   and reservations (V8's code range, malloc arenas); never resident,
 * - `anonymous`: every other anonymous mapping. V8's heap lives here, in
 *   256 KiB chunks that nothing in /proc names: it cannot be told from other
 *   anonymous memory reliably, so it is not guessed at.
 * - `special`: other `[...]` areas (`[uprobes]`, ...).
 */
export type RegionKind =
  | 'heap'
  | 'stack'
  | 'vdso'
  | 'vvar'
  | 'vsyscall'
  | 'file'
  | 'shared-memory'
  | 'named-anonymous'
  | 'jit-code'
  | 'reserved'
  | 'anonymous'
  | 'special';

/** The header fields the kind is told from. */
export type VmaIdentity = Pick<SmapsHeader, 'pathname' | 'perms' | 'inode'>;

/** The header fields and VmFlags KSM's verdict is told from. */
export interface VmaWithFlags extends VmaIdentity {
  /** Two-letter VmFlags, e.g. `mg`, `sh`, `ht`. */
  vmFlags: readonly string[];
}

const NAMED: Record<string, RegionKind> = {
  '[heap]': 'heap',
  '[stack]': 'stack',
  '[vdso]': 'vdso',
  '[vvar]': 'vvar',
  '[vvar_vclock]': 'vvar',
  '[vsyscall]': 'vsyscall',
};

/** Shared memory objects by the path the kernel prints for them (`/dev/zero (deleted)` for MAP_SHARED|MAP_ANONYMOUS). */
function isSharedMemoryPath(path: string): boolean {
  return path.startsWith('/SYSV') || path.startsWith('/memfd:') || path.startsWith('/dev/zero') || path.startsWith('/dev/shm/');
}

/** A shared mapping of a device file: the device's memory, not a shared-memory object. */
function isDeviceMapping(vma: VmaIdentity): boolean {
  return vma.perms.endsWith('s') && vma.inode !== 0 && vma.pathname.startsWith('/dev/') && !isSharedMemoryPath(vma.pathname);
}

export function regionKind(vma: VmaIdentity): { kind: RegionKind; anonName: string | undefined } {
  const path = vma.pathname;
  if (path === '') {
    if (vma.perms.startsWith('---')) return { kind: 'reserved', anonName: undefined };
    if (vma.perms[2] === 'x') return { kind: 'jit-code', anonName: undefined };
    return { kind: 'anonymous', anonName: undefined };
  }
  const named = NAMED[path];
  if (named !== undefined) return { kind: named, anonName: undefined };
  if (path.startsWith('[stack:')) return { kind: 'stack', anonName: undefined };
  if (path.startsWith('[anon:') && path.endsWith(']')) return { kind: 'named-anonymous', anonName: path.slice(6, -1) };
  if (path.startsWith('[anon_shmem:') && path.endsWith(']')) return { kind: 'shared-memory', anonName: path.slice(12, -1) };
  if (path.startsWith('[')) return { kind: 'special', anonName: undefined };
  // MAP_PRIVATE of /dev/zero is plain anonymous memory (the kernel makes the VMA anonymous, and it merges); smaps still names the file.
  if (path === '/dev/zero' && vma.perms.endsWith('p')) return { kind: 'anonymous', anonName: undefined };
  if (isSharedMemoryPath(path) || isDeviceMapping(vma)) return { kind: 'shared-memory', anonName: undefined };
  return { kind: 'file', anonName: undefined };
}

/**
 * Why KSM will not take the VMA: the flags mm/ksm.c vma_ksm_compatible()
 * refuses (VM_SHARED/VM_MAYSHARE, VM_HUGETLB, VM_PFNMAP, VM_IO,
 * VM_DONTEXPAND, VM_MIXEDMAP, VM_DROPPABLE), and the vsyscall page, which
 * smaps prints but is no VMA of the process. DAX has no VmFlags letter.
 */
export function ksmRefusals(vma: VmaWithFlags): string[] {
  if (vma.pathname === '[vsyscall]') return ['the vsyscall page is not a real mapping'];
  const flags = new Set(vma.vmFlags);
  const reasons: string[] = [];
  if (flags.has('sh') || flags.has('ms') || vma.perms.endsWith('s')) {
    reasons.push('shared mapping (only private anonymous memory merges)');
  }
  if (flags.has('ht')) reasons.push('hugetlb mapping');
  if (flags.has('pf')) reasons.push('PFN map');
  if (flags.has('io')) reasons.push('I/O mapping');
  if (flags.has('de')) reasons.push('VM_DONTEXPAND mapping');
  if (flags.has('mm')) reasons.push('mixed map');
  if (flags.has('dp')) reasons.push('droppable mapping');
  return reasons;
}

export function ksmCompatible(vma: VmaWithFlags): boolean {
  return ksmRefusals(vma).length === 0;
}

/** ksmRefusals() in one line, or what is left to say when the flags refuse nothing. */
export function whyNotMergeable(vma: VmaWithFlags): string {
  const reasons = ksmRefusals(vma);
  return reasons.length > 0 ? reasons.join(', ') : 'the kernel left VM_MERGEABLE unset for this mapping';
}

/**
 * Memory that can only hold anonymous data: anonymous mappings and the heap,
 * shared-memory objects (shmem, SysV, memfd, /dev/zero), hugetlb files; not
 * files, devices or the kernel's named areas.
 */
export function anonymousLike(vma: VmaWithFlags): boolean {
  switch (regionKind(vma).kind) {
    case 'anonymous':
    case 'reserved':
    case 'jit-code':
    case 'named-anonymous':
    case 'heap':
      return true;
    case 'shared-memory':
      return !isDeviceMapping(vma);
    case 'file':
      return vma.inode === 0 || vma.vmFlags.includes('ht');
    default:
      return false;
  }
}

