/** Argument checks shared by the public functions; they throw before native code runs. */
import { types } from 'node:util';

import type { View } from './binding.js';

export interface RootOption {
  /** Directory that holds `proc/` and `sys/` (default `/`): fixtures of other kernels. */
  root?: string;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'string') return `a string (${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)})`;
  return `${typeof value} (${String(value)})`;
}

export function invalidType(name: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(value)}`);
  (error as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

export function outOfRange(name: string, expected: string, value: unknown): RangeError {
  const error = new RangeError(
    `The value of "${name}" is out of range. It must be ${expected}. Received ${String(value)}`,
  );
  (error as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return error;
}

/** What a number must be: its range, whether only integers, and how to say it. */
export interface NumberSpec {
  min: number;
  max: number;
  /** Only integers (default false). NaN never passes; Infinity only where `max` is Infinity. */
  integer?: boolean;
  /** The words after "It must be" where the range alone says it badly (default: "an integer from MIN to MAX"). */
  expected?: string;
}

/**
 * The one number validator: TypeError for a non-number, RangeError for one
 * outside `spec`, with Node's codes and wording.
 */
export function checkNumber(name: string, value: unknown, spec: NumberSpec): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  const inRange = value >= spec.min && value <= spec.max;
  const whole = spec.integer === true ? Number.isInteger(value) : !Number.isNaN(value);
  if (!inRange || !whole) {
    const expected = spec.expected ?? `${spec.integer === true ? 'an integer' : 'a number'} from ${spec.min} to ${spec.max}`;
    throw outOfRange(name, expected, value);
  }
  return value;
}

/** checkNumber(), where undefined means "not given". */
export function optionalNumber(name: string, value: unknown, spec: NumberSpec): number | undefined {
  return value === undefined ? undefined : checkNumber(name, value, spec);
}

/** A byte count: positive safe integer. */
export function checkSize(name: string, value: unknown): number {
  return checkNumber(name, value, { integer: true, min: 1, max: Number.MAX_SAFE_INTEGER, expected: 'a positive safe integer' });
}

/** Linux pids are 1 .. 2^22 (PID_MAX_LIMIT on 64-bit). */
export const PID_MAX_LIMIT = 4194304;

export function checkPid(value: unknown, name = 'pid'): number | undefined {
  return optionalNumber(name, value, { integer: true, min: 1, max: PID_MAX_LIMIT });
}

/** A deadline in milliseconds, from 1 ms to an hour. */
export function checkTimeout(name: string, value: unknown): number | undefined {
  return optionalNumber(name, value, { integer: true, min: 1, max: 3_600_000 });
}

export function checkOptions<T extends object>(value: unknown, name = 'options'): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidType(name, 'an object', value);
  }
  return value as Partial<T>;
}

export function checkRoot(options: Partial<RootOption>): string {
  const root = options.root;
  if (root === undefined) return '/';
  if (typeof root !== 'string') throw invalidType('options.root', 'of type string', root);
  if (root.length === 0) throw outOfRange('options.root', 'a non-empty path', '""');
  return root;
}

export function checkLabel(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidType('options.label', 'of type string', value);
  return value;
}

export function checkBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value;
}

/** A non-negative number of milliseconds, or Infinity. */
export function checkDuration(name: string, value: unknown): number | undefined {
  return optionalNumber(name, value, { min: 0, max: Infinity, expected: 'a number >= 0' });
}

/** An optional callback, typed as declared; Node's word for it is `of type function`. */
export function checkFunction<T>(name: string, value: T): T {
  if (value !== undefined && typeof value !== 'function') throw invalidType(name, 'of type function', value);
  return value;
}

export function checkSignal(value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw invalidType('options.signal', 'an AbortSignal', value);
  return value;
}

/**
 * An ArrayBuffer, TypedArray, Buffer or DataView whose memory we may advise,
 * from any realm (a `vm` context's buffers fail `instanceof ArrayBuffer`).
 * SharedArrayBuffer memory is out of reach of Node-API on Node 20.
 */
export function checkView(value: unknown, name = 'view'): View {
  let buffer: ArrayBufferLike;
  if (isArrayBuffer(value)) {
    buffer = value;
  } else if (ArrayBuffer.isView(value)) {
    buffer = value.buffer;
  } else {
    throw invalidType(name, 'an ArrayBuffer, a TypedArray, a Buffer or a DataView', value);
  }
  if (!isArrayBuffer(buffer)) {
    throw invalidType(name, 'backed by an ArrayBuffer (SharedArrayBuffer is not supported)', value);
  }
  if (isDetached(buffer)) {
    const error = new TypeError(`The "${name}" argument's ArrayBuffer is detached`);
    (error as TypeError & { code: string }).code = 'ERR_INVALID_STATE';
    throw error;
  }
  return value as View;
}

/** An ArrayBuffer of any realm (not a SharedArrayBuffer). */
export function isArrayBuffer(value: unknown): value is ArrayBuffer {
  return types.isArrayBuffer(value);
}

/** The ArrayBuffer holding a view's memory (the buffer itself for an ArrayBuffer). */
export function ownerOf(view: View): ArrayBuffer {
  return (isArrayBuffer(view) ? view : view.buffer) as ArrayBuffer;
}

function isDetached(buffer: ArrayBuffer): boolean {
  const detached = (buffer as ArrayBuffer & { detached?: boolean }).detached;
  if (typeof detached === 'boolean') return detached;
  // Before ArrayBuffer.prototype.detached: a detached buffer cannot be sliced.
  if (buffer.byteLength !== 0) return false;
  try {
    buffer.slice(0, 0);
    return false;
  } catch {
    return true;
  }
}
