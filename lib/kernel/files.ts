/**
 * Every file access of the package goes through here or through the other
 * readers of this folder: lint allows `node:fs` nowhere else. These are the
 * plain operations; what a missing or unreadable file means is the caller's
 * (the /proc and /sys readers beside this one) to say.
 */
import * as fs from 'node:fs';

import { bindingState, type NativeBinding, type NativeSmapsScan } from '../binding.js';
import { isSystemError } from '../errors.js';

/** The whole file as UTF-8 text; throws the system error. */
export function readText(file: string): string {
  return fs.readFileSync(file, 'utf8');
}

/** The whole file as bytes; throws the system error. */
export function readBytes(file: string): Buffer {
  return fs.readFileSync(file);
}

/** The whole file, or undefined when it does not exist (ENOENT); other errors throw. */
export function readTextIfPresent(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The whole file, or undefined for any failure (absent, unreadable, gone). */
export function readTextOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

export function exists(file: string): boolean {
  return fs.existsSync(file);
}

export function isDirectory(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}

/** The names in a directory; throws the system error. */
export function listDirectory(dir: string): string[] {
  return fs.readdirSync(dir);
}

/** The names in a directory, off the event loop; throws the system error. */
export function listDirectoryAsync(dir: string): Promise<string[]> {
  return fs.promises.readdir(dir);
}

/** The error code access(2) gives for `mode` ('W_OK', 'X_OK', ...), undefined when allowed. */
export function accessError(file: string, mode: 'R_OK' | 'W_OK' | 'X_OK'): string | undefined {
  try {
    fs.accessSync(file, fs.constants[mode]);
    return undefined;
  } catch (error) {
    return isSystemError(error) ? error.code : String(error);
  }
}

export function writeText(file: string, text: string): void {
  fs.writeFileSync(file, text);
}

/** A read under way: its result, and a way to stop waiting for it. */
export interface PendingRead<T = Buffer> {
  promise: Promise<T>;
  /** The caller gave up: the read may finish later; it no longer holds the event loop. */
  abandon(): void;
}

/**
 * A whole file read off the event loop. Where the addon is loaded, on a
 * thread of its own: seq_files such as smaps hand out one page per read(2)
 * (fs.promises.readFile would make each a round trip to the libuv pool), and
 * a read of another process's file waits for its mmap lock, which must not
 * take one of the pool's four threads from every other fs call.
 */
export function startRead(file: string): PendingRead {
  const state = bindingState();
  if (state.loaded && typeof state.binding.abandonRead === 'function') return nativeRead(state.binding, file, undefined) as PendingRead;
  return { promise: fs.promises.readFile(file), abandon: () => {} };
}

/** Reads the addon is doing for this environment, by id, until delivered. */
const inFlight = new Map<number, { resolve(result: Buffer | NativeSmapsScan): void; reject(error: Error): void }>();

function deliver(id: number, error: Error | null, result: Buffer | NativeSmapsScan | undefined): void {
  const read = inFlight.get(id);
  if (read === undefined) return;
  inFlight.delete(id);
  if (error !== null) read.reject(error);
  else read.resolve(result!);
}

function nativeRead(native: NativeBinding, file: string, scan: 'smaps' | undefined, reads?: ScanReads): PendingRead<Buffer | NativeSmapsScan> {
  return nativeStart(native, () => native.readProcFile(file, scan, deliver, reads?.chunks?.rule, reads?.chunks?.limit, reads?.attribute, reads?.stackPointers));
}

/**
 * The chunk headers a smaps read reads beside its scan (binding.ts
 * readProcFile's `chunks`): of the first `limit` VMAs mallocChunkCandidate()
 * takes, or of those profit() reports (`reported`).
 */
export interface ChunkHeadersRequest {
  rule: 'candidates' | 'reported';
  limit: number;
}

/** What a read of a process's smaps reads beside its scan, on the reader threads. */
export interface ScanReads {
  chunks?: ChunkHeadersRequest;
  /**
   * Exact attribution of the VMAs with KSM pages (binding.ts readProcFile's
   * `attribute`): PAGEMAP_SCAN tried ('scan'), or pagemap read whole.
   */
  attribute?: 'scan' | 'linear';
  /** The threads' stack pointers (binding.ts readProcFile's `stackPointers`). */
  stackPointers?: boolean;
}

/** A job of the addon's reader threads, `begin` starting it with deliver(). */
function nativeStart(native: NativeBinding, begin: () => number): PendingRead<Buffer | NativeSmapsScan> {
  let id: number;
  try {
    id = begin();
  } catch (error) {
    return { promise: Promise.reject(error as Error), abandon: () => {} };
  }
  const promise = new Promise<Buffer | NativeSmapsScan>((resolve, reject) => inFlight.set(id, { resolve, reject }));
  return { promise, abandon: () => native.abandonRead(id) };
}

/**
 * startRead() of an smaps file, scanned on the addon's reader thread where
 * the addon scans with `fields` (its smapsScanFields, in this order); the
 * bytes otherwise, and wherever the kernel's layout was not what it read.
 */
export function startSmapsRead(file: string, fields: readonly string[], reads?: ScanReads): PendingRead<Buffer | NativeSmapsScan> {
  const state = bindingState();
  if (state.loaded && scansSmaps(fields)) return nativeRead(state.binding, file, 'smaps', reads);
  return startRead(file);
}

/** Whether startSmapsRead() with `fields` is scanned by the addon (and its ScanReads made), where the bytes have the kernel's layout. */
export function scansSmaps(fields: readonly string[]): boolean {
  const state = bindingState();
  const scanFields = state.loaded ? state.binding.smapsScanFields : undefined;
  return scanFields !== undefined && scanFields.length === fields.length && scanFields.every((name, i) => name === fields[i]);
}

/**
 * 16 bytes at each of `addresses` in the process of `dir` (/proc/PID), read
 * on the addon's reader thread where pagemap shows the page present, zeros
 * elsewhere (native/header-read.h); undefined where the addon cannot.
 */
export function startHeaderRead(dir: string, addresses: BigUint64Array): PendingRead | undefined {
  const state = bindingState();
  if (!state.loaded || typeof state.binding.readPresentHeaders !== 'function') return undefined;
  const native = state.binding;
  return nativeStart(native, () => native.readPresentHeaders!(dir, addresses, deliver)) as PendingRead;
}

/** Synchronous positional reads of a file held open for the callback. */
export function withOpenFile<T>(file: string, fn: (read: (buffer: Buffer, position: number) => number) => T): T {
  const fd = fs.openSync(file, 'r');
  try {
    return fn((buffer, position) => fs.readSync(fd, buffer, 0, buffer.length, position));
  } finally {
    fs.closeSync(fd);
  }
}
