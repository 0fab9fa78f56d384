/**
 * Human-readable figures for reports and the CLI: bytes in IEC units and
 * aligned tables (cli-table3, borderless by default so output pipes well).
 */
import Table from 'cli-table3';

import { invalidType } from './validate.js';

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
  if (bytes === undefined) return '-';
  if (typeof bytes !== 'number') throw invalidType('bytes', 'of type number', bytes);
  if (!Number.isFinite(bytes)) return String(bytes);
  const digits = options?.fractionDigits ?? 1;
  const sign = bytes < 0 ? '-' : options?.signed === true && bytes > 0 ? '+' : '';
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

/** `0.6667` -> `66.7%`; undefined -> `-`. */
export function formatPercent(ratio: number | undefined, fractionDigits = 1): string {
  if (ratio === undefined || !Number.isFinite(ratio)) return '-';
  return `${(ratio * 100).toFixed(fractionDigits)}%`;
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
  const plain = (options?.style ?? 'plain') === 'plain';
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
