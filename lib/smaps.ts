/**
 * /proc/PID/smaps, parsed without judgement: every VMA with every field the
 * kernel printed. Sizes printed in kB are converted to bytes. Lines that fit
 * no known shape are counted, never thrown on.
 */
import { invalidType } from './validate.js';

export interface SmapsVma {
  start: bigint;
  end: bigint;
  /** e.g. `rw-p`: the last letter is `p` (private) or `s` (shared). */
  perms: string;
  offset: bigint;
  /** `major:minor` of the backing device, `00:00` for anonymous memory. */
  dev: string;
  inode: number;
  /** File path, `[heap]`, `[stack]`, `[anon:name]`, ... or '' for anonymous memory. */
  pathname: string;
  /**
   * Every `Name: value` line but VmFlags, by the kernel's name: kB figures in
   * bytes (`Rss`, `Pss`, `KSM`, `AnonHugePages`, ...), plain numbers as they
   * are (`THPeligible`, `ProtectionKey`).
   */
  fields: Record<string, number>;
  /** Two-letter flags, e.g. `mg` for VM_MERGEABLE, `sh` for shared. */
  vmFlags: string[];
}

export interface SmapsParse {
  vmas: SmapsVma[];
  /** Lines that matched no known shape (truncated or foreign input). */
  skippedLines: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+([0-9a-f]+)\s+([0-9a-f]+:[0-9a-f]+)\s+(\d+)\s*(.*)$/;
const FIELD = /^([A-Za-z_][A-Za-z0-9_]*):\s*(-?\d+)(?:\s+(kB))?\s*$/;

export function parseSmaps(text: string): SmapsParse {
  if (typeof text !== 'string') throw invalidType('text', 'of type string', text);
  const vmas: SmapsVma[] = [];
  let current: SmapsVma | undefined;
  let skippedLines = 0;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    if (line.startsWith('VmFlags:')) {
      if (current) current.vmFlags = line.slice(8).trim().split(/\s+/).filter(Boolean);
      else skippedLines++;
      continue;
    }
    const field = FIELD.exec(line);
    if (field) {
      if (!current) {
        skippedLines++;
        continue;
      }
      const value = Number(field[2]);
      const bytes = field[3] === 'kB' ? value * 1024 : value;
      // Past 2^53 neither the figure nor its bytes are exact: skip, never round.
      if (!Number.isSafeInteger(value) || !Number.isSafeInteger(bytes)) {
        skippedLines++;
        continue;
      }
      // An own property even for "__proto__"-like names.
      Object.defineProperty(current.fields, field[1]!, { value: bytes, enumerable: true, writable: true, configurable: true });
      continue;
    }
    const header = HEADER.exec(line);
    if (header) {
      current = {
        start: BigInt(`0x${header[1]!}`),
        end: BigInt(`0x${header[2]!}`),
        perms: header[3]!,
        offset: BigInt(`0x${header[4]!}`),
        dev: header[5]!,
        inode: Number(header[6]),
        pathname: header[7]!,
        fields: {},
        vmFlags: [],
      };
      vmas.push(current);
      continue;
    }
    skippedLines++;
  }
  return { vmas, skippedLines };
}

/** VMAs that overlap [start, end). */
export function overlapping(vmas: readonly SmapsVma[], start: bigint, end: bigint): SmapsVma[] {
  return vmas.filter((vma) => vma.start < end && vma.end > start);
}

/**
 * What a VMA's flags say about why KSM will not take it: the flags that
 * mm/ksm.c vma_ksm_compatible() refuses. DAX has no VmFlags letter.
 */
export function whyNotMergeable(vma: SmapsVma): string {
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
  return reasons.length > 0 ? reasons.join(', ') : 'the kernel left VM_MERGEABLE unset for this mapping';
}
