/** What every command shares: colours, numbers for people, tables, JSON, errors. */
import { createColors } from 'picocolors';

import { isSystemError } from '../errors.js';
import { formatBytes as formatBytesOf, formatTable } from '../format.js';

export type Colors = ReturnType<typeof createColors>;

/** Global options, as commander gives them to every command. */
export interface GlobalOptions {
  root?: string;
  json?: boolean;
  color?: boolean;
}

/**
 * Colour only for a person at a terminal: never with --json, NO_COLOR,
 * --no-color, TERM=dumb or when stdout is a pipe (FORCE_COLOR overrides the
 * last).
 */
export function colors(options: GlobalOptions, stream: NodeJS.WriteStream = process.stdout): Colors {
  const env = process.env;
  const enabled =
    options.json !== true &&
    options.color !== false &&
    !env.NO_COLOR &&
    env.TERM !== 'dumb' &&
    (Boolean(env.FORCE_COLOR) || stream.isTTY === true);
  return createColors(enabled);
}

/** Bytes in IEC units (lib/format.ts, shared with the reports); null/undefined -> '-'. */
export function formatBytes(bytes: number | undefined | null): string {
  return formatBytesOf(bytes ?? undefined);
}

/** 12345 -> '12,345'; undefined -> '-'. */
export function formatCount(value: number | undefined | null): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return '-';
  return Math.round(value).toLocaleString('en-US');
}

/** Seconds for people: '850 ms', '42 s', '3 min 20 s', '2 h 5 min'. */
export function formatSeconds(seconds: number | undefined | null): string {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return '-';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  if (seconds < 3600) {
    const m = Math.floor(seconds / 60);
    const s = Math.round(seconds - m * 60);
    return s === 0 ? `${m} min` : `${m} min ${s} s`;
  }
  const h = Math.floor(seconds / 3600);
  const m = Math.round((seconds - h * 3600) / 60);
  return m === 0 ? `${h} h` : `${h} h ${m} min`;
}

export function formatRatio(value: number | undefined | null, digits = 2): string {
  if (value === undefined || value === null || !Number.isFinite(value)) return '-';
  return value.toFixed(digits);
}

/** An aligned table without box lines (lib/format.ts's formatTable), cells as given. */
export function table(head: string[], rows: string[][], align?: Array<'left' | 'right'>): string {
  return formatTable(
    rows,
    head.map((header, index) => ({ header, value: (row: string[]) => row[index] ?? '', align: align?.[index] ?? 'left' })),
  );
}

/** Another process's text (a label it published, a path) made safe to print: control characters as \xNN. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * JSON for --json: bigints (addresses) as '0x...' hex strings, undefined
 * fields as null so every documented key is present.
 */
export function toJson(value: unknown, indent: number | undefined = 2): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v === undefined ? null : v),
    indent,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(`${toJson(value)}\n`);
}

/** A usage error: exit code 2, like commander's own. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Prints an error to stderr (as JSON with --json) and sets a non-zero exit
 * code: 2 for usage, 1 for everything else.
 */
export function reportError(error: unknown, options: GlobalOptions): void {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: unknown }).code;
  const hint = isSystemError(e) ? e.hint : undefined;
  if (options.json === true) {
    const body: Record<string, unknown> = { error: { name: e.name, code: typeof code === 'string' ? code : null, message: e.message } };
    process.stderr.write(`${JSON.stringify(body)}\n`);
  } else {
    const c = colors(options, process.stderr);
    process.stderr.write(`${c.red('node-ksm: error:')} ${e.message}${hint !== undefined && !e.message.includes(hint) ? ` (${hint})` : ''}\n`);
  }
  process.exitCode = e instanceof UsageError ? 2 : 1;
}

/** '120s', '2m', '1h', '500ms', '90' (seconds) -> seconds. */
export function parseDuration(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(`${name}: '${text}' is not a duration (e.g. 120s, 2m, 500ms)`);
  const value = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = unit === 'ms' ? 0.001 : unit === 'm' || unit === 'min' ? 60 : unit === 'h' ? 3600 : 1;
  return value * factor;
}

/** A non-negative integer option. */
export function parseInteger(text: string, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${name}: '${text}' is not an integer`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`${name}: ${value} is out of range (${min} to ${max})`);
  return value;
}

/** '64MiB', '1g', '4096' -> bytes. */
export function parseSize(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(text.trim());
  if (!match) throw new UsageError(`${name}: '${text}' is not a size (e.g. 64MiB)`);
  const unit = (match[2] ?? 'b').toLowerCase()[0];
  const factor = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(Number(match[1]) * factor);
}

/** on/off, yes/no, true/false, 1/0 -> boolean. */
export function parseSwitch(text: string, name: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'on', 'yes', 'true'].includes(t)) return true;
  if (['0', 'off', 'no', 'false'].includes(t)) return false;
  throw new UsageError(`${name}: '${text}' is not on/off`);
}
