/**
 * /proc/PID/smaps, parsed without judgement: every VMA with every field the
 * kernel printed. Sizes printed in kB are converted to bytes. Lines that fit
 * no known shape are counted, never thrown on.
 */

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

const enum Char {
  Tab = 9,
  Space = 32,
  Minus = 45,
  Zero = 48,
  Nine = 57,
  Colon = 58,
  UpperA = 65,
  UpperZ = 90,
  Underscore = 95,
  LowerA = 97,
  LowerZ = 122,
  LowerB = 98,
  UpperB = 66,
  LowerK = 107,
}

function isNameChar(c: number): boolean {
  return (c >= Char.LowerA && c <= Char.LowerZ) || (c >= Char.UpperA && c <= Char.UpperZ) ||
    (c >= Char.Zero && c <= Char.Nine) || c === Char.Underscore;
}

/**
 * Parses smaps text. A hand-written scanner rather than a regex per line:
 * a process with 10,000 VMAs prints 250,000 lines, and profit() must stay
 * close to the kernel's own cost of printing them (see bench/profit.mjs).
 */
export function parseSmaps(text: string): SmapsParse {
  const vmas: SmapsVma[] = [];
  let current: SmapsVma | undefined;
  let skippedLines = 0;
  const length = text.length;
  // Every VMA prints the same fields in the same order: the previous VMA's
  // names, matched in place, spare a slice and a string lookup per line.
  let names: string[] = [];
  let previousNames: string[] = [];
  let pos = 0;
  while (pos < length) {
    let eol = text.indexOf('\n', pos);
    if (eol === -1) eol = length;
    const lineStart = pos;
    pos = eol + 1;
    if (eol === lineStart) continue;

    const expected = previousNames[names.length];
    if (
      current !== undefined && expected !== undefined &&
      text.startsWith(expected, lineStart) && text.charCodeAt(lineStart + expected.length) === Char.Colon
    ) {
      names.push(expected);
      if (expected === 'VmFlags') {
        current.vmFlags = splitFlags(text, lineStart + 8, eol);
        continue;
      }
      const value = parseFieldValue(text, lineStart + expected.length + 1, eol);
      if (value === undefined) skippedLines++;
      else current.fields[expected] = value;
      continue;
    }

    // `Name:` (a field or VmFlags) or a VMA header `start-end perms ...`.
    let i = lineStart;
    while (i < eol && isNameChar(text.charCodeAt(i))) i++;
    if (i < eol && i > lineStart && text.charCodeAt(i) === Char.Colon) {
      if (current === undefined) {
        skippedLines++;
        continue;
      }
      const name = text.slice(lineStart, i);
      names.push(name);
      if (name === 'VmFlags') {
        current.vmFlags = splitFlags(text, i + 1, eol);
        continue;
      }
      const value = parseFieldValue(text, i + 1, eol);
      if (value === undefined) skippedLines++;
      else current.fields[name] = value;
      continue;
    }
    const header = HEADER.exec(text.slice(lineStart, eol));
    if (header) {
      if (names.length > 0) previousNames = names;
      names = [];
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

function splitFlags(text: string, from: number, eol: number): string[] {
  const flags: string[] = [];
  let i = from;
  while (i < eol) {
    const start = i;
    while (i < eol && text.charCodeAt(i) !== Char.Space && text.charCodeAt(i) !== Char.Tab) i++;
    if (i > start) flags.push(text.slice(start, i));
    i++;
  }
  return flags;
}

/** `   1234 kB` -> bytes, `   7` -> 7; undefined for anything else. */
function parseFieldValue(text: string, from: number, eol: number): number | undefined {
  let i = from;
  while (i < eol && (text.charCodeAt(i) === Char.Space || text.charCodeAt(i) === Char.Tab)) i++;
  let negative = false;
  if (i < eol && text.charCodeAt(i) === Char.Minus) {
    negative = true;
    i++;
  }
  const digits = i;
  let value = 0;
  while (i < eol) {
    const c = text.charCodeAt(i);
    if (c < Char.Zero || c > Char.Nine) break;
    value = value * 10 + (c - Char.Zero);
    i++;
  }
  if (i === digits || !Number.isSafeInteger(value)) return undefined;
  while (i < eol && (text.charCodeAt(i) === Char.Space || text.charCodeAt(i) === Char.Tab)) i++;
  let kilobytes = false;
  if (i + 1 < eol && text.charCodeAt(i) === Char.LowerK && text.charCodeAt(i + 1) === Char.UpperB) {
    kilobytes = true;
    i += 2;
    while (i < eol && (text.charCodeAt(i) === Char.Space || text.charCodeAt(i) === Char.Tab)) i++;
  }
  if (i !== eol) return undefined;
  const signed = negative ? -value : value;
  if (!kilobytes) return signed;
  const bytes = signed * 1024;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
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

/**
 * One VMA with the smaps figures regions() and profit() use, in bytes;
 * undefined where the kernel printed no such line (`KSM` before 6.6).
 */
export interface SmapsSummary {
  start: bigint;
  end: bigint;
  perms: string;
  offset: bigint;
  dev: string;
  inode: number;
  pathname: string;
  size: number | undefined;
  rss: number | undefined;
  pss: number | undefined;
  sharedClean: number | undefined;
  sharedDirty: number | undefined;
  privateClean: number | undefined;
  privateDirty: number | undefined;
  anonymous: number | undefined;
  ksm: number | undefined;
  anonHugePages: number | undefined;
  swap: number | undefined;
  vmFlags: string[];
}

export interface SmapsScan {
  vmas: SmapsSummary[];
  /** Lines that matched no known shape (truncated or foreign input). */
  skippedLines: number;
}

type SummaryField =
  | 'size' | 'rss' | 'pss' | 'sharedClean' | 'sharedDirty' | 'privateClean'
  | 'privateDirty' | 'anonymous' | 'ksm' | 'anonHugePages' | 'swap';

const SUMMARY_FIELDS: ReadonlyArray<readonly [string, SummaryField]> = [
  ['Size', 'size'],
  ['Rss', 'rss'],
  ['Pss', 'pss'],
  ['Shared_Clean', 'sharedClean'],
  ['Shared_Dirty', 'sharedDirty'],
  ['Private_Clean', 'privateClean'],
  ['Private_Dirty', 'privateDirty'],
  ['Anonymous', 'anonymous'],
  ['KSM', 'ksm'],
  ['AnonHugePages', 'anonHugePages'],
  ['Swap', 'swap'],
];

const FIELD_BYTES = new Map<SummaryField, Uint8Array>(SUMMARY_FIELDS.map(([name, key]) => [key, Buffer.from(name, 'latin1')]));
const VMFLAGS = Buffer.from('VmFlags', 'latin1');

/** The field a `Name:` of this length and first two bytes can be, if one we keep. */
function candidate(length: number, first: number, second: number): SummaryField | 'vmFlags' | undefined {
  switch (length) {
    case 3:
      return first === 82 ? 'rss' : first === 80 ? 'pss' : first === 75 ? 'ksm' : undefined; // R P K
    case 4:
      return first === 83 ? (second === 105 ? 'size' : second === 119 ? 'swap' : undefined) : undefined; // Si Sw
    case 7:
      return first === 86 ? 'vmFlags' : undefined; // V
    case 9:
      return first === 65 ? 'anonymous' : undefined; // A
    case 12:
      return first === 83 ? 'sharedClean' : undefined; // S: Shared_Clean or Shared_Dirty, told below
    case 13:
      return first === 80 ? 'privateClean' : first === 65 ? 'anonHugePages' : undefined; // P A
    default:
      return undefined;
  }
}

class Summary implements SmapsSummary {
  size: number | undefined = undefined;
  rss: number | undefined = undefined;
  pss: number | undefined = undefined;
  sharedClean: number | undefined = undefined;
  sharedDirty: number | undefined = undefined;
  privateClean: number | undefined = undefined;
  privateDirty: number | undefined = undefined;
  anonymous: number | undefined = undefined;
  ksm: number | undefined = undefined;
  anonHugePages: number | undefined = undefined;
  swap: number | undefined = undefined;
  vmFlags: string[] = [];

  constructor(
    readonly start: bigint,
    readonly end: bigint,
    readonly perms: string,
    readonly offset: bigint,
    readonly dev: string,
    readonly inode: number,
    readonly pathname: string,
  ) {}
}

function sameBytes(data: Uint8Array, at: number, name: Uint8Array): boolean {
  for (let k = 0; k < name.length; k++) if (data[at + k] !== name[k]) return false;
  return true;
}

/**
 * smaps as raw bytes -> the figures regions() and profit() need, nothing
 * more. Works on bytes with memchr-backed line splitting and skips the
 * fields it does not need after two byte compares: a 10,000-VMA smaps is
 * 7.5 MB, and this has to cost a small fraction of what the kernel spends
 * printing it. parseSmaps() keeps every field, at about ten times the cost.
 */
export function scanSmaps(data: Uint8Array): SmapsScan {
  const buffer = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const vmas: SmapsSummary[] = [];
  let current: Summary | undefined;
  let skippedLines = 0;
  const length = buffer.length;
  let pos = 0;
  while (pos < length) {
    const lineStart = pos;
    const first = buffer[pos]!;
    if (first >= Char.UpperA && first <= Char.UpperZ) {
      // `Name:   value kB`
      let colon = pos + 1;
      let c = buffer[colon];
      // Names are [A-Za-z0-9_]; stop at the colon or at anything that ends one.
      while (c !== undefined && c !== Char.Colon && c > Char.Space) c = buffer[++colon];
      let key = c === Char.Colon && current !== undefined
        ? candidate(colon - lineStart, first, buffer[lineStart + 1]!)
        : undefined;
      if (key === 'sharedClean' && buffer[lineStart + 7] === 68) key = 'sharedDirty'; // Shared_D
      else if (key === 'privateClean' && buffer[lineStart + 8] === 68) key = 'privateDirty'; // Private_D
      // The kernel prints `Name:` padded so that `<value, width 8> kB` ends at
      // column 27: try there first, then scan.
      let eol = lineStart + 27;
      if (!(buffer[eol] === 10 && buffer[eol - 1] === Char.UpperB && buffer[eol - 2] === Char.LowerK && eol > colon)) {
        eol = colon;
        while (eol < length && buffer[eol] !== 10) eol++;
      }
      pos = eol + 1;
      if (c !== Char.Colon || current === undefined) {
        skippedLines++;
        continue;
      }
      if (key === undefined) continue;
      if (key === 'vmFlags') {
        if (sameBytes(buffer, lineStart, VMFLAGS)) {
          current.vmFlags = flagsOf(buffer, colon + 1, eol);
        }
        continue;
      }
      if (!sameBytes(buffer, lineStart, FIELD_BYTES.get(key)!)) continue;
      const value = byteFieldValue(buffer, colon + 1, eol);
      if (value === undefined) skippedLines++;
      else current[key] = value;
      continue;
    }
    let eol = buffer.indexOf(10, pos);
    if (eol === -1) eol = length;
    pos = eol + 1;
    if (eol === lineStart) continue;
    const header = HEADER.exec(buffer.toString('latin1', lineStart, eol));
    if (header === null) {
      skippedLines++;
      continue;
    }
    let pathname = header[7]!;
    // Paths are bytes; decode as UTF-8 only when they are not plain ASCII.
    if (!/^[\x00-\x7f]*$/.test(pathname)) {
      pathname = buffer.toString('utf8', eol - Buffer.byteLength(pathname, 'latin1'), eol);
    }
    current = new Summary(
      hexToBigInt(header[1]!),
      hexToBigInt(header[2]!),
      header[3]!,
      hexToBigInt(header[4]!),
      header[5]!,
      Number(header[6]),
      pathname.trimEnd(),
    );
    vmas.push(current);
  }
  return { vmas, skippedLines };
}

// VmFlags are two letters each: one interned string per pair seen.
const FLAG_NAMES = new Map<number, string>();

function flagsOf(data: Uint8Array, from: number, eol: number): string[] {
  const flags: string[] = [];
  let i = from;
  while (i < eol) {
    while (i < eol && data[i] === Char.Space) i++;
    const start = i;
    while (i < eol && data[i] !== Char.Space) i++;
    if (i === start) break;
    if (i - start === 2) {
      const code = (data[start]! << 8) | data[start + 1]!;
      let name = FLAG_NAMES.get(code);
      if (name === undefined) {
        name = String.fromCharCode(data[start]!, data[start + 1]!);
        FLAG_NAMES.set(code, name);
      }
      flags.push(name);
    } else {
      flags.push(Buffer.from(data.buffer, data.byteOffset + start, i - start).toString('latin1'));
    }
  }
  return flags;
}

/** Hex text to BigInt, through a double where it is exact (13 digits: 2^52). */
function hexToBigInt(hex: string): bigint {
  return hex.length <= 13 ? BigInt(parseInt(hex, 16)) : BigInt(`0x${hex}`);
}

function byteFieldValue(data: Uint8Array, from: number, eol: number): number | undefined {
  let i = from;
  while (i < eol && data[i] === Char.Space) i++;
  const digits = i;
  let value = 0;
  while (i < eol) {
    const c = data[i]!;
    if (c < Char.Zero || c > Char.Nine) break;
    value = value * 10 + (c - Char.Zero);
    i++;
  }
  if (i === digits) return undefined;
  while (i < eol && data[i] === Char.Space) i++;
  if (i + 1 < eol && data[i] === Char.LowerK && data[i + 1] === Char.UpperB) {
    value *= 1024;
    i += 2;
  }
  while (i < eol && data[i] === Char.Space) i++;
  return i === eol && Number.isSafeInteger(value) ? value : undefined;
}
