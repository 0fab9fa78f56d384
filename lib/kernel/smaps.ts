/**
 * /proc/PID/smaps, parsed without judgement: one scanner over the kernel's
 * bytes, in two modes. scanSmaps() keeps the figures the reports use (named,
 * in bytes); parseSmaps() keeps every field the kernel printed as well, by
 * its kernel name. Sizes printed in kB are converted to bytes. Lines that fit
 * no known shape are counted, never thrown on.
 *
 * The scanner here defines the format. The addon's reader thread runs the
 * same scan of the summary figures over bytes in the kernel's own layout
 * (native/smaps-scan.cc), because here it costs a fifth to a third of what
 * the kernel spends printing smaps; fromNativeScan() makes the same VMAs of
 * what it found (smaps-native.ts), and anything out of that layout comes
 * back as bytes for scan(). test/smaps.test.ts holds the two to the same
 * output.
 */
import type { View } from '../binding.js';
import { checkView, invalidType, isArrayBuffer } from '../validate.js';

/** A VMA's header line: `start-end perms offset dev inode pathname`. */
export interface SmapsHeader {
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
}

// Byte values. Plain consts: with isolatedModules a const enum is emitted as
// an object, and a property load per byte compared is measurable here.
const CH_TAB = 9;
const CH_SPACE = 32;
const CH_MINUS = 45;
const CH_ZERO = 48;
const CH_NINE = 57;
const CH_COLON = 58;
const CH_UPPERA = 65;
const CH_UPPERZ = 90;
const CH_UNDERSCORE = 95;
const CH_LOWERA = 97;
const CH_LOWERZ = 122;
const CH_UPPERB = 66;
const CH_LOWERK = 107;

function isNameChar(c: number): boolean {
  return (c >= CH_LOWERA && c <= CH_LOWERZ) || (c >= CH_UPPERA && c <= CH_UPPERZ) ||
    (c >= CH_ZERO && c <= CH_NINE) || c === CH_UNDERSCORE;
}

/**
 * One VMA with the smaps figures regions() and profit() use, in bytes;
 * undefined where the kernel printed no such line (`KSM` before 6.6).
 */
export interface SmapsSummary extends SmapsHeader {
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
  /** True: each VMA starts at or past the end of the one before (the addon's scan tells it); false or absent: not known to. */
  inOrder?: boolean;
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

const SUMMARY_KEY = new Map<string, SummaryField>(SUMMARY_FIELDS);

// The `Name:` of each field we keep, found by its first four bytes (`Rss:`,
// `Shar`, ...) and then compared whole.
interface Wanted {
  name: Uint8Array;
  key: SummaryField | 'vmFlags';
}
const WANTED: Wanted[] = [...SUMMARY_FIELDS, ['VmFlags', 'vmFlags'] as const].map(([name, key]) => ({
  name: Buffer.from(`${name}:`, 'latin1'),
  key,
}));
const prefixOf = (text: string): number =>
  ((text.charCodeAt(0) << 24) | (text.charCodeAt(1) << 16) | (text.charCodeAt(2) << 8) | text.charCodeAt(3)) | 0;
const P_SIZE = prefixOf('Size');
const P_RSS = prefixOf('Rss:');
const P_PSS = prefixOf('Pss:');
const P_SHARED = prefixOf('Shar');
const P_PRIVATE = prefixOf('Priv');
const P_ANON = prefixOf('Anon');
const P_KSM = prefixOf('KSM:');
const P_SWAP = prefixOf('Swap');
const P_VMFLAGS = prefixOf('VmFl');
// WANTED's indexes as literals, so the switches below compare constants.
const W_SIZE = 0;
const W_RSS = 1;
const W_PSS = 2;
const W_SHARED_CLEAN = 3;
const W_SHARED_DIRTY = 4;
const W_PRIVATE_CLEAN = 5;
const W_PRIVATE_DIRTY = 6;
const W_ANONYMOUS = 7;
const W_KSM = 8;
const W_ANON_HUGE_PAGES = 9;
const W_SWAP = 10;
const W_VMFLAGS = 11;

/** The WANTED entry a line can be, from its first bytes; -1 for lines we skip. */
function candidateOf(u: Uint8Array, at: number): number {
  const prefix = ((u[at]! << 24) | (u[at + 1]! << 16) | (u[at + 2]! << 8) | u[at + 3]!) | 0;
  switch (prefix) {
    case P_SIZE: return W_SIZE;
    case P_RSS: return W_RSS;
    case P_PSS: return W_PSS;
    case P_KSM: return W_KSM;
    case P_SWAP: return W_SWAP;
    case P_VMFLAGS: return W_VMFLAGS;
    case P_SHARED: return u[at + 7] === 67 ? W_SHARED_CLEAN : W_SHARED_DIRTY; // Shared_C / Shared_D
    case P_PRIVATE: return u[at + 8] === 67 ? W_PRIVATE_CLEAN : W_PRIVATE_DIRTY; // Private_C / Private_D
    case P_ANON: return u[at + 4] === 121 ? W_ANONYMOUS : W_ANON_HUGE_PAGES; // Anony / AnonH
    default: return -1;
  }
}

/** @internal The one VMA shape both scans make (smaps-native.ts too). */
export class Summary implements SmapsSummary {
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
  /** Every field by its kernel name, for parseSmaps() only. */
  fields?: Record<string, number>;

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

export interface SmapsVma extends SmapsSummary {
  /**
   * Every `Name: value` line but VmFlags, by the kernel's name: kB figures in
   * bytes (`Rss`, `Pss`, `KSM`, `AnonHugePages`, ...), plain numbers as they
   * are (`THPeligible`, `ProtectionKey`).
   */
  fields: Record<string, number>;
}

export interface SmapsParse {
  vmas: SmapsVma[];
  /** Lines that matched no known shape (truncated or foreign input). */
  skippedLines: number;
}

/**
 * smaps as raw bytes -> the figures regions() and profit() need, nothing
 * more. A 10,000-VMA smaps is 7.5 MB and 250,000 lines, and this has to cost
 * a small fraction of what the kernel spends printing it, so: bytes, not a
 * decoded string; a line's field told by its first four bytes; the line's end
 * looked for first where the kernel's layout puts it (`%-16s%8lu kB` ends at
 * byte 27) and searched for only when it is not there; headers parsed by hand.
 * Unknown lines are skipped, malformed ones counted: only an argument that
 * is no bytes at all throws. parseSmaps() keeps every field as well.
 */
export function scanSmaps(data: View): SmapsScan {
  const view = checkView(data, 'data');
  const buffer = Buffer.isBuffer(view)
    ? view
    : isArrayBuffer(view)
      ? Buffer.from(view)
      : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  return scan(buffer, false);
}

/**
 * smaps text -> every VMA with every field the kernel printed (`fields`, by
 * the kernel's names), besides the named figures scanSmaps() gives. The same
 * scanner, keeping more.
 */
export function parseSmaps(text: string): SmapsParse {
  if (typeof text !== 'string') throw invalidType('text', 'of type string', text);
  const { vmas, skippedLines } = scan(Buffer.from(text, 'utf8'), true);
  return { vmas: vmas as SmapsVma[], skippedLines };
}

/** The scanner itself, for the readers: `allFields` keeps every field (SmapsVma). */
export function scan(buffer: Buffer, allFields: boolean): SmapsScan {
  // Plain Uint8Array indexing: Buffer's methods cost twice as much per line.
  const u = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const vmas: SmapsSummary[] = [];
  let current: Summary | undefined;
  let skippedLines = 0;
  const length = buffer.length;
  let pos = 0;
  while (pos < length) {
    const lineStart = pos;
    const first = u[pos]!;
    if (first === 10) {
      pos++;
      continue;
    }
    if (first >= CH_UPPERA && first <= CH_UPPERZ) {
      // The common case: a kB line of exactly the kernel's layout.
      let eol = lineStart + 27;
      const kernelShape = u[eol] === 10 && u[eol - 1] === CH_UPPERB && u[eol - 2] === CH_LOWERK && u[eol - 3] === CH_SPACE;
      if (!kernelShape) {
        eol = lineStart;
        while (eol < length && u[eol] !== 10) eol++;
      }
      pos = eol + 1;
      if (current === undefined || eol - lineStart < 5) {
        skippedLines++;
        continue;
      }
      if (allFields) skippedLines += anyField(buffer, u, current, lineStart, eol);
      else if (!kernelShape || !kernelKbLine(u, current, lineStart)) {
        skippedLines += wantedField(buffer, u, current, lineStart, eol);
      }
      continue;
    }
    let eol = buffer.indexOf(10, lineStart);
    if (eol === -1) eol = length;
    pos = eol + 1;
    if (allFields && current !== undefined && fieldNameEnd(u, lineStart, eol) > 0) {
      // `name: value` in lower case: not the kernel's, kept like any field.
      skippedLines += anyField(buffer, u, current, lineStart, eol);
      continue;
    }
    const parsed = parseHeader(u, buffer, lineStart, eol, allFields);
    if (parsed === undefined) {
      // Fields below a header we could not read belong to no VMA we know.
      current = undefined;
      skippedLines++;
      continue;
    }
    current = parsed;
    vmas.push(parsed);
  }
  return { vmas, skippedLines };
}

/** One of the named figures (or VmFlags) into `current`; 1 when its value is malformed. */
function wantedField(buffer: Buffer, u: Uint8Array, current: Summary, lineStart: number, eol: number): number {
  const index = candidateOf(u, lineStart);
  if (index < 0) return 0;
  const wanted = WANTED[index]!;
  const valueStart = lineStart + wanted.name.length;
  if (valueStart > eol || !sameBytes(u, lineStart, wanted.name)) return 0;
  if (wanted.key === 'vmFlags') {
    current.vmFlags = flagsOf(u, buffer, valueStart, eol);
    return 0;
  }
  const value = byteFieldValue(u, valueStart, eol, false);
  if (value === undefined) return 1;
  current[wanted.key] = value;
  return 0;
}

/**
 * A 28-byte `%-16s%8lu kB` line, the shape the kernel prints every kB field
 * in: the field it names (if one we keep) stored with a named store (a keyed
 * store by field name is most of the cost otherwise); false when its value is
 * not spaces then digits up to byte 24, for wantedField() to judge.
 */
function kernelKbLine(u: Uint8Array, current: Summary, lineStart: number): boolean {
  const index = candidateOf(u, lineStart);
  if (index < 0) return true;
  const name = WANTED[index]!.name;
  if (!sameBytes(u, lineStart, name)) return true;
  const valueEnd = lineStart + 24;
  let i = lineStart + name.length;
  while (i < valueEnd && u[i] === CH_SPACE) i++;
  if (i === valueEnd) return false;
  let value = 0;
  for (; i < valueEnd; i++) {
    const digit = u[i]! - CH_ZERO;
    if (digit < 0 || digit > 9) return false;
    value = value * 10 + digit;
  }
  value *= 1024;
  if (!Number.isSafeInteger(value)) return false;
  switch (index) {
    case W_SIZE: current.size = value; break;
    case W_RSS: current.rss = value; break;
    case W_PSS: current.pss = value; break;
    case W_SHARED_CLEAN: current.sharedClean = value; break;
    case W_SHARED_DIRTY: current.sharedDirty = value; break;
    case W_PRIVATE_CLEAN: current.privateClean = value; break;
    case W_PRIVATE_DIRTY: current.privateDirty = value; break;
    case W_ANONYMOUS: current.anonymous = value; break;
    case W_KSM: current.ksm = value; break;
    case W_ANON_HUGE_PAGES: current.anonHugePages = value; break;
    case W_SWAP: current.swap = value; break;
    default: return false; // VmFlags is never a kB line
  }
  return true;
}

/** The index of the ':' ending a `Name:` at `from`, or -1. */
function fieldNameEnd(u: Uint8Array, from: number, eol: number): number {
  let i = from;
  while (i < eol && isNameChar(u[i]!)) i++;
  return i > from && i < eol && u[i] === CH_COLON ? i : -1;
}

/** Any `Name: value` line into `current.fields` (and the named figure it is); 1 when it is malformed. */
function anyField(buffer: Buffer, u: Uint8Array, current: Summary, lineStart: number, eol: number): number {
  const colon = fieldNameEnd(u, lineStart, eol);
  if (colon < 0) return 1;
  const name = buffer.toString('latin1', lineStart, colon);
  if (name === 'VmFlags') {
    current.vmFlags = flagsOf(u, buffer, colon + 1, eol);
    return 0;
  }
  const value = byteFieldValue(u, colon + 1, eol, true);
  if (value === undefined) return 1;
  const fields = current.fields!;
  // An own property even for a field named `__proto__`.
  Object.defineProperty(fields, name, { value, enumerable: true, writable: true, configurable: true });
  const key = SUMMARY_KEY.get(name);
  if (key !== undefined) current[key] = value;
  return 0;
}

// VmFlags are two lower-case letters each: one interned string per pair,
// found by its letters' index (a Map lookup costs more than the rest).
const FLAG_NAMES: (string | undefined)[] = Array.from({ length: 26 * 26 }, () => undefined);

/** @internal VmFlags' text in [from, eol) as its flags (smaps-native.ts too). */
export function flagsOf(u: Uint8Array, data: Buffer, from: number, eol: number): string[] {
  const flags: string[] = [];
  let i = from;
  while (i < eol) {
    while (i < eol && u[i] === CH_SPACE) i++;
    const start = i;
    while (i < eol && u[i] !== CH_SPACE) i++;
    if (i === start) break;
    const a = u[start]! - CH_LOWERA;
    const b = u[start + 1]! - CH_LOWERA;
    if (i - start === 2 && a >= 0 && a < 26 && b >= 0 && b < 26) {
      const code = a * 26 + b;
      let name = FLAG_NAMES[code];
      if (name === undefined) {
        name = data.toString('latin1', start, i);
        FLAG_NAMES[code] = name;
      }
      flags.push(name);
    } else {
      flags.push(data.toString('latin1', start, i));
    }
  }
  return flags;
}

// perms and dev take few values: one string each, found by their bytes
// (at most 6, as a number) without making a string first.
const INTERNED = new Map<number, string>();
function intern(u: Uint8Array, data: Buffer, from: number, to: number): string {
  if (to - from > 6) return data.toString('latin1', from, to);
  let key = 1;
  for (let i = from; i < to; i++) key = key * 256 + u[i]!;
  const known = INTERNED.get(key);
  if (known !== undefined) return known;
  const text = data.toString('latin1', from, to);
  if (INTERNED.size < 4096) INTERNED.set(key, text);
  return text;
}

function hexValue(c: number): number {
  if (c >= CH_ZERO && c <= CH_NINE) return c - CH_ZERO;
  if (c >= CH_LOWERA && c <= 102) return c - CH_LOWERA + 10; // a-f
  return -1;
}

/** Where parseHeader() is, and the last hex number it read. */
interface Cursor {
  i: number;
  value: bigint;
}

/** A hex number at `cursor.i` into `cursor.value`; false when there is none or it is over 16 digits. */
function hexAt(u: Uint8Array, data: Buffer, cursor: Cursor, eol: number): boolean {
  const begin = cursor.i;
  let i = begin;
  let value = 0;
  while (i < eol) {
    const digit = hexValue(u[i]!);
    if (digit < 0) break;
    value = value * 16 + digit;
    i++;
  }
  cursor.i = i;
  const digits = i - begin;
  if (digits === 0 || digits > 16) return false;
  // Exact in a double up to 13 hex digits (2^52); beyond, from the text.
  cursor.value = value === 0 ? 0n : digits <= 13 ? BigInt(value) : BigInt(`0x${data.toString('latin1', begin, i)}`);
  return true;
}

function skipSpaces(u: Uint8Array, from: number, eol: number): number {
  let i = from;
  while (i < eol && u[i] === CH_SPACE) i++;
  return i;
}

/** `start-end perms offset dev inode   pathname`, or undefined. */
function parseHeader(u: Uint8Array, data: Buffer, from: number, eol: number, allFields: boolean): Summary | undefined {
  const cursor: Cursor = { i: from, value: 0n };
  if (!hexAt(u, data, cursor, eol) || u[cursor.i] !== CH_MINUS) return undefined;
  const start = cursor.value;
  cursor.i++;
  if (!hexAt(u, data, cursor, eol)) return undefined;
  const end = cursor.value;
  let i = skipSpaces(u, cursor.i, eol);
  if (i === cursor.i) return undefined;
  const permsStart = i;
  while (i < eol && u[i] !== CH_SPACE) i++;
  if (i - permsStart !== 4) return undefined;
  const perms = intern(u, data, permsStart, i);
  cursor.i = skipSpaces(u, i, eol);
  if (cursor.i === i || !hexAt(u, data, cursor, eol)) return undefined;
  const offset = cursor.value;
  i = skipSpaces(u, cursor.i, eol);
  if (i === cursor.i) return undefined;
  const devStart = i;
  let colon = false;
  while (i < eol && u[i] !== CH_SPACE) {
    if (u[i] === CH_COLON) colon = true;
    i++;
  }
  if (!colon) return undefined;
  const dev = intern(u, data, devStart, i);
  const devEnd = i;
  i = skipSpaces(u, i, eol);
  if (i === devEnd) return undefined;
  let inode = 0;
  const inodeStart = i;
  while (i < eol && u[i]! >= CH_ZERO && u[i]! <= CH_NINE) inode = inode * 10 + (u[i++]! - CH_ZERO);
  if (i === inodeStart || (i < eol && u[i] !== CH_SPACE)) return undefined;
  i = skipSpaces(u, i, eol);
  let pathEnd = eol;
  while (pathEnd > i && (u[pathEnd - 1] === CH_SPACE || u[pathEnd - 1] === 13)) pathEnd--;
  const pathname = pathEnd > i ? data.toString('utf8', i, pathEnd) : '';
  const vma = new Summary(start, end, perms, offset, dev, inode, pathname);
  if (allFields) vma.fields = {};
  return vma;
}

/** `    1234 kB` -> bytes, `       1` -> 1; undefined for anything else. */
function byteFieldValue(data: Uint8Array, from: number, eol: number, signed: boolean): number | undefined {
  let i = from;
  while (i < eol && (data[i] === CH_SPACE || data[i] === CH_TAB)) i++;
  const negative = signed && data[i] === CH_MINUS;
  if (negative) i++;
  const digits = i;
  let value = 0;
  while (i < eol) {
    const c = data[i]!;
    if (c < CH_ZERO || c > CH_NINE) break;
    value = value * 10 + (c - CH_ZERO);
    i++;
  }
  if (i === digits) return undefined;
  while (i < eol && (data[i] === CH_SPACE || data[i] === CH_TAB)) i++;
  if (i + 1 < eol && data[i] === CH_LOWERK && data[i + 1] === CH_UPPERB) {
    value *= 1024;
    i += 2;
  }
  while (i < eol && (data[i] === CH_SPACE || data[i] === CH_TAB || data[i] === 13)) i++;
  if (negative) value = -value;
  return i === eol && Number.isSafeInteger(value) ? value : undefined;
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** end - start in bytes, with no BigInt made in between where both are exact as numbers (a report makes one per VMA). */
export function sizeOf(range: { start: bigint; end: bigint }): number {
  return range.end <= SAFE ? Number(range.end) - Number(range.start) : Number(range.end - range.start);
}

/** VMAs that overlap [start, end). */
export function overlapping<V extends SmapsHeader>(vmas: readonly V[], start: bigint, end: bigint): V[] {
  return vmas.filter((vma) => vma.start < end && vma.end > start);
}
