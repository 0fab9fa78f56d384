/**
 * Security guardrails. KSM is a side channel: a write to a merged page takes
 * a copy-on-write fault, and its timing tells the writer that some other
 * process holds the same page. Secrets must never be in mergeable memory,
 * and code from another trust domain must not inherit merge-any.
 */
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

import { addonFile, bindingState, type NativeBinding, type View } from '../binding.js';
import { KsmUnsupportedError, isSystemError, withHint } from '../errors.js';
import { accessError } from '../kernel/files.js';
import type { SmapsVma } from '../kernel/smaps.js';
import { requireKsm } from '../kernel/support.js';
import { checkLabel, checkOptions, checkView, invalidType, outOfRange } from '../validate.js';

/** Set to `off` in spawnUnmerged()'s children: node-ksm/register stays off there. */
export const UNMERGED_ENV = 'NODE_KSM_REGISTER';

/** The exec wrapper's file name, next to the addon (build/Release, prebuilds/<platform>-<arch>). */
export const EXEC_WRAPPER = 'ksm-unmerged-exec';

export interface SensitiveOptions {
  /** Names the range in sensitiveRanges() and doctor's report. */
  label?: string;
}

/** A range markSensitive() made unmergeable, kept while its pages are mapped. */
export interface SensitiveRange {
  /** First byte of the first page the view touches. */
  start: bigint;
  /** End of the last page the view touches. */
  end: bigint;
  label: string | undefined;
}

function unmergeHint(error: unknown): unknown {
  if (isSystemError(error) && error.code === 'EAGAIN') {
    return withHint(error, 'the kernel ran short of memory to copy the merged pages back; retry');
  }
  if (isSystemError(error) && error.code === 'ENOMEM') {
    return withHint(error, 'part of the range is not mapped, or the kernel is out of memory');
  }
  return error;
}

/**
 * Makes the memory of `view` unmergeable (MADV_UNMERGEABLE: merged pages are
 * copied back first) and keeps it so, for the whole process: enableMerge(),
 * disableMerge() and markMergeable() in any thread re-apply it, and doctor
 * in any thread reports it if it becomes mergeable again.
 *
 * The mark belongs to the pages, not to the view: it survives a transfer of
 * the buffer (to another thread too) and the collection of the detached
 * original, and lasts while the pages are mapped. Memory freed and handed
 * out again stays unmergeable (that costs savings, never a secret); a
 * mapping allocMergeable() makes in its place clears it. Overlapping marks
 * become one range, named by the newest label.
 *
 * Unlike markMergeable(), this covers every page the view touches,
 * including the partial pages at its edges: a secret's bytes there must not
 * merge either. Bytes sharing those pages stop merging too, which costs
 * savings, never data. Each call may split a mapping in two or three, so
 * mark a few large buffers of secrets rather than many small ones.
 *
 * @returns the range now kept unmergeable (whole pages).
 * @throws TypeError for a non-view or a detached buffer.
 * @throws KsmUnsupportedError where KSM is not available.
 * @throws SystemError EAGAIN/ENOMEM from madvise (the range is recorded all the same).
 */
export function markSensitive(view: View, options?: SensitiveOptions): SensitiveRange {
  checkView(view);
  const opts = checkOptions<SensitiveOptions>(options);
  const label = checkLabel(opts.label);
  const native = requireKsm();
  let range;
  try {
    range = native.markSensitive(view, label);
  } catch (error) {
    throw unmergeHint(error);
  }
  return { start: range.address, end: range.address + BigInt(range.length), label };
}

/**
 * The ranges markSensitive() made unmergeable, in every thread, whose pages
 * are still mapped, by start address (internal: for doctor and verify).
 */
export function sensitiveRanges(): SensitiveRange[] {
  const state = bindingState();
  if (!state.loaded) return [];
  return state.binding.sensitiveRanges().map(({ start, end, label }) => ({ start, end, label }));
}

/**
 * Sensitive ranges that some VMA overlapping them has marked mergeable
 * (`mg` in VmFlags) again, from a parse of this process's smaps (internal: for
 * doctor).
 */
export function mergeableSensitiveRanges(vmas: readonly SmapsVma[]): Array<SensitiveRange & { vmas: SmapsVma[] }> {
  const out: Array<SensitiveRange & { vmas: SmapsVma[] }> = [];
  for (const range of sensitiveRanges()) {
    const hits = vmas.filter((vma) => vma.start < range.end && vma.end > range.start && vma.vmFlags.includes('mg'));
    if (hits.length > 0) out.push({ ...range, vmas: hits });
  }
  return out;
}

/**
 * After PR_SET_MEMORY_MERGE (internal): MADV_MERGEABLE again on every
 * allocMergeable()/markMergeable() range of the process (merge-any off clears
 * VM_MERGEABLE on every VMA), then MADV_UNMERGEABLE on every sensitive range
 * (merge-any on sets it on every VMA).
 */
export function reapplyAdvice(native: NativeBinding): void {
  try {
    native.reapplyAdvice();
  } catch (error) {
    throw unmergeHint(error);
  }
}

/** Whether [start, end) lies inside one live sensitive range. */
export function insideSensitive(start: bigint, end: bigint): boolean {
  return sensitiveRanges().some((range) => range.start <= start && range.end >= end);
}

// ---------------------------------------------------------------------------
// spawnUnmerged

function wrapperPath(): string {
  const addon = addonFile();
  if (addon === undefined) {
    throw new KsmUnsupportedError(
      'the native addon did not load, so the exec wrapper next to it cannot be found; ' +
        'refusing to spawn a child that might inherit merge-any',
    );
  }
  const file = path.join(path.dirname(addon), EXEC_WRAPPER);
  const code = accessError(file, 'X_OK');
  if (code !== undefined) {
    throw new KsmUnsupportedError(
      `the exec wrapper ${file} is missing or not executable (${code}); rebuild with \`npm rebuild node-ksm\`; ` +
        'refusing to spawn a child that might inherit merge-any',
    );
  }
  return file;
}

type StdioEntry = Extract<StdioOptions, readonly unknown[]>[number];

function normalizeStdio(stdio: StdioOptions | undefined): StdioEntry[] {
  if (stdio === undefined || stdio === null) return ['pipe', 'pipe', 'pipe'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  if (!Array.isArray(stdio)) throw invalidType('options.stdio', 'a string or an array', stdio);
  const out: StdioEntry[] = [...(stdio as StdioEntry[])];
  // Node fills missing 0..2 with 'pipe' (undefined/null entries included).
  while (out.length < 3) out.push('pipe');
  return out.map((entry, i) => (i < 3 && (entry === undefined || entry === null) ? 'pipe' : entry));
}

function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(os.constants.errno)) {
    if (value === errno) return name;
  }
  return `E${errno}`;
}

/**
 * child_process.spawn(), but the child does not inherit merge-any
 * (PR_SET_MEMORY_MERGE): it starts through `ksm-unmerged-exec`, shipped with
 * the addon, which clears the flag and then execs `command`. Use it to run
 * code from another trust domain from a process that called enableMerge().
 * The parent's own flag and its merged pages stay as they are.
 *
 * Same arguments, options and returned ChildProcess as spawn(). Where
 * `command` cannot be executed, the child emits 'error' (code ENOENT,
 * EACCES, ..., syscall `spawn <command>`) as spawn's would, and then
 * exits with status 127. One more stdio pipe than asked for is opened:
 * the wrapper's status channel, closed before `command` runs.
 * Outside Linux there is no merge-any, and this is spawn().
 *
 * @throws KsmUnsupportedError on Linux when the wrapper cannot be found
 *   (it fails closed rather than spawn a child that keeps merge-any).
 */
export function spawnUnmerged(command: string, options?: SpawnOptions): ChildProcess;
export function spawnUnmerged(command: string, args?: readonly string[], options?: SpawnOptions): ChildProcess;
export function spawnUnmerged(
  command: string,
  argsOrOptions?: readonly string[] | SpawnOptions,
  maybeOptions?: SpawnOptions,
): ChildProcess {
  if (typeof command !== 'string') throw invalidType('command', 'of type string', command);
  if (command.length === 0) throw outOfRange('command', 'a non-empty string', '""');
  if (command.includes('\u0000')) throw outOfRange('command', 'a string without null bytes', JSON.stringify(command));
  let args: readonly string[] = [];
  let options: SpawnOptions | undefined;
  if (Array.isArray(argsOrOptions)) {
    args = argsOrOptions;
    options = maybeOptions;
  } else if (argsOrOptions === undefined || argsOrOptions === null) {
    options = maybeOptions;
  } else if (typeof argsOrOptions === 'object') {
    options = argsOrOptions as SpawnOptions;
    if (maybeOptions !== undefined) throw invalidType('args', 'an array', argsOrOptions);
  } else {
    throw invalidType('args', 'an array', argsOrOptions);
  }
  args.forEach((arg, i) => {
    if (typeof arg !== 'string') throw invalidType(`args[${i}]`, 'of type string', arg);
    if (arg.includes('\u0000')) throw outOfRange(`args[${i}]`, 'a string without null bytes', JSON.stringify(arg));
  });
  const opts = checkOptions<SpawnOptions>(options);

  if (process.platform !== 'linux') return spawn(command, [...args], opts);
  const wrapper = wrapperPath();

  let file = command;
  let fileArgs = [...args];
  if (opts.shell !== undefined && opts.shell !== false) {
    // As spawn() does it: the whole command line to `sh -c`.
    const line = [command, ...args].join(' ');
    file = typeof opts.shell === 'string' ? opts.shell : '/bin/sh';
    fileArgs = ['-c', line];
  }
  const argv0 = opts.argv0 ?? (file === command ? command : file);
  const stdio = normalizeStdio(opts.stdio);
  const statusFd = stdio.length;
  stdio.push('pipe');

  const { argv0: _argv0, shell: _shell, ...rest } = opts;
  // node-ksm/register in the child (NODE_OPTIONS is inherited) must not opt it back in;
  // doctor also reads this to tell an unmerged child from a lost flag.
  const env = { ...(opts.env ?? process.env), [UNMERGED_ENV]: 'off' };
  const child = spawn(wrapper, [String(statusFd), file, argv0, ...fileArgs], { ...rest, env, stdio });
  // What spawn() would have said about the command, not about the wrapper.
  Object.defineProperty(child, 'spawnfile', { value: file, configurable: true, enumerable: true, writable: true });
  Object.defineProperty(child, 'spawnargs', {
    value: [argv0, ...fileArgs],
    configurable: true,
    enumerable: true,
    writable: true,
  });

  const status = child.stdio[statusFd] as NodeJS.ReadableStream | null | undefined;
  if (status === null || status === undefined) return child;

  // 'exit' (and 'close') wait until the status channel has spoken, so that a
  // failed exec is reported as 'error' first, as spawn() reports it.
  const held: unknown[][] = [];
  let statusDone = false;
  const emit = child.emit.bind(child) as (event: string | symbol, ...rest: unknown[]) => boolean;
  child.emit = ((event: string | symbol, ...rest: unknown[]): boolean => {
    if (!statusDone && (event === 'exit' || event === 'close')) {
      held.push([event, ...rest]);
      return true;
    }
    return emit(event, ...rest);
  }) as typeof child.emit;

  let text = '';
  status.setEncoding('utf8');
  status.on('data', (chunk: string) => {
    text += chunk;
  });
  status.on('error', () => {
    /* the channel only closes or speaks; a reset means the same as a close */
  });
  status.once('close', () => {
    const match = /^(\d+) (prctl|exec)\n/.exec(text);
    if (match) {
      const errno = Number(match[1]);
      const code = errnoName(errno);
      const step = match[2]!;
      const syscall = step === 'exec' ? `spawn ${file}` : 'prctl';
      const error = Object.assign(new Error(`${syscall} ${code}`), {
        code,
        errno: -errno,
        syscall,
        path: file,
        spawnargs: fileArgs,
      });
      if (step === 'prctl') {
        error.message = `${code}: could not clear PR_SET_MEMORY_MERGE in the child, so ${file} was not run`;
      }
      emit('error', error);
      // As spawn() reports a command it could not run: no 'exit', and
      // 'close' with the negative errno as the code.
      statusDone = true;
      const closed = (): void => {
        Object.defineProperty(child, 'exitCode', { value: -errno, configurable: true, enumerable: true, writable: true });
        emit('close', -errno, null);
      };
      if (held.some(([event]) => event === 'close')) {
        child.emit = emit as typeof child.emit;
        closed();
      } else {
        child.emit = ((event: string | symbol, ...rest: unknown[]): boolean => {
          if (event === 'exit') return true;
          if (event === 'close') {
            child.emit = emit as typeof child.emit;
            closed();
            return true;
          }
          return emit(event, ...rest);
        }) as typeof child.emit;
      }
      return;
    }
    statusDone = true;
    child.emit = emit as typeof child.emit;
    for (const [event, ...rest] of held) emit(event as string, ...rest);
  });
  (status as NodeJS.ReadableStream & { unref?: () => void }).unref?.();
  return child;
}
