/**
 * Human-readable figures for reports and the CLI: bytes in IEC units and
 * aligned tables (cli-table3, borderless by default so output pipes well).
 */
import Table from 'cli-table3';

import { checkBoolean, checkFunction, checkOptions, invalidType, optionalNumber, outOfRange } from './validate.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

export interface FormatBytesOptions {
  /** Digits after the point for KiB and up (default 1). Whole bytes have none. */
  fractionDigits?: number;
  /** Prefix positive values with `+` (for deltas and net figures). */
  signed?: boolean;
}

/**
 * `1536` -> `1.5 KiB`, `-3221225472` -> `-3.0 GiB`, `undefined` -> `-`.
 * Powers of 1024, as the kernel's own kB are.
 */
export function formatBytes(bytes: number | undefined, options?: FormatBytesOptions): string {
  if (bytes !== undefined && typeof bytes !== 'number') throw invalidType('bytes', 'of type number', bytes);
  const opts = checkOptions<FormatBytesOptions>(options);
  const digits = checkFractionDigits('options.fractionDigits', opts.fractionDigits) ?? 1;
  const signed = checkBoolean('options.signed', opts.signed) ?? false;
  if (bytes === undefined) return '-';
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : signed && bytes > 0 ? '+' : '';
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  // 1023.96 KiB would print as "1024.0 KiB": carry into the next unit.
  if (unit > 0 && unit < UNITS.length - 1 && Number(value.toFixed(digits)) >= 1024) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(Math.round(value)) : value.toFixed(digits);
  return `${sign}${text} ${UNITS[unit]!}`;
}

/** `0.6667` -> `66.7%`; undefined (or NaN, Infinity) -> `-`. */
export function formatPercent(ratio: number | undefined, fractionDigits = 1): string {
  if (ratio !== undefined && typeof ratio !== 'number') throw invalidType('ratio', 'of type number', ratio);
  const digits = checkFractionDigits('fractionDigits', fractionDigits) ?? 1;
  if (ratio === undefined || !Number.isFinite(ratio)) return '-';
  return `${(ratio * 100).toFixed(digits)}%`;
}

/** What Number.prototype.toFixed() takes, checked before it throws its own kind of RangeError. */
function checkFractionDigits(name: string, value: unknown): number | undefined {
  return optionalNumber(name, value, { integer: true, min: 0, max: 100 });
}

export interface TableColumn<Row> {
  header: string;
  /** The cell: strings as they are, numbers as bytes unless `format` says otherwise. */
  value: (row: Row) => string | number | bigint | undefined;
  /** Defaults: numbers right, text left. */
  align?: 'left' | 'right';
  format?: (value: number) => string;
}

export interface FormatTableOptions {
  /** `plain` (default): columns separated by two spaces; `box`: lines around cells. */
  style?: 'plain' | 'box';
}

/** Every column whole before the first row is drawn: an empty table checks them too. */
function checkColumn(name: string, column: unknown): void {
  if (typeof column !== 'object' || column === null || Array.isArray(column)) throw invalidType(name, 'an object', column);
  const { header, value, align, format } = column as Partial<Record<keyof TableColumn<unknown>, unknown>>;
  if (typeof header !== 'string') throw invalidType(`${name}.header`, 'of type string', header);
  if (typeof value !== 'function') throw invalidType(`${name}.value`, 'of type function', value);
  if (align !== undefined) {
    if (typeof align !== 'string') throw invalidType(`${name}.align`, 'of type string', align);
    if (align !== 'left' && align !== 'right') throw outOfRange(`${name}.align`, "'left' or 'right'", align);
  }
  checkFunction(`${name}.format`, format);
}

const PLAIN_CHARS = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '',
  right: '', 'right-mid': '', middle: '  ',
};

/** Rows as an aligned text table, one line per row under a header line. */
export function formatTable<Row>(rows: readonly Row[], columns: ReadonlyArray<TableColumn<Row>>, options?: FormatTableOptions): string {
  if (!Array.isArray(rows)) throw invalidType('rows', 'an array', rows);
  if (!Array.isArray(columns)) throw invalidType('columns', 'an array', columns);
  columns.forEach((column: unknown, i) => checkColumn(`columns[${i}]`, column));
  const given: unknown = checkOptions<FormatTableOptions>(options).style;
  const style = given === undefined ? 'plain' : given;
  if (typeof style !== 'string') throw invalidType('options.style', 'of type string', style);
  if (style !== 'plain' && style !== 'box') throw outOfRange('options.style', "'plain' or 'box'", style);
  const plain = style === 'plain';
  const cells = rows.map((row) => columns.map((column) => {
    const value = column.value(row);
    if (value === undefined) return { text: '-', numeric: true };
    if (typeof value === 'number') return { text: column.format ? column.format(value) : formatBytes(value), numeric: true };
    if (typeof value === 'bigint') return { text: `0x${value.toString(16)}`, numeric: false };
    return { text: value, numeric: false };
  }));
  const alignOf = (index: number): 'left' | 'right' => {
    const column = columns[index]!;
    if (column.align !== undefined) return column.align;
    return cells.length > 0 && cells.every((row) => row[index]!.numeric) ? 'right' : 'left';
  };
  const table = new Table({
    head: columns.map((column) => column.header),
    colAligns: columns.map((_, index) => alignOf(index)),
    style: { head: [], border: [], compact: true, 'padding-left': plain ? 0 : 1, 'padding-right': plain ? 0 : 1 },
    ...(plain ? { chars: PLAIN_CHARS } : {}),
  });
  for (const row of cells) {
    table.push(row.map((cell) => cell.text));
  }
  const text = table.toString();
  // Borderless cli-table3 pads the last column too: trim each line's tail.
  return plain ? text.split('\n').map((line) => line.trimEnd()).join('\n') : text;
}
