/**
 * Every public function with every wrong argument kind: the error class,
 * `code` and exact message. The table is checked against the exports of
 * lib/index.ts, so a new export without a row fails here.
 *
 * Adding a row: `name: [param(...), ...]`, one entry per parameter in order,
 * each saying what it accepts; `[]` for a function without parameters.
 */
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';

import * as api from '../../lib/index.js';

type Accepts = 'number' | 'string' | 'boolean' | 'object' | 'view' | 'array' | 'AbortSignal' | 'function';

interface Param {
  /** The name the error message uses (`options.label`). */
  name: string;
  accepts: Accepts;
  /** Calls the function with `bad` in this parameter's place, valid values elsewhere. */
  call: (bad: unknown) => unknown;
  /** undefined is accepted (an optional parameter or option). */
  optional?: boolean;
  /** Kinds accepted beyond `accepts` (an overload), by kind name. */
  alsoAccepts?: string[];
  /** The "must be ..." text where it names more than `accepts` (a union, a list of pids). */
  expected?: string;
  /** Right type, wrong value: [value, the "It must be ..." text]. */
  outOfRange?: Array<[unknown, string]>;
}

const p = (name: string, accepts: Accepts, call: (bad: unknown) => unknown, extra: Partial<Param> = {}): Param => ({ name, accepts, call, ...extra });
const options = (call: (bad: unknown) => unknown): Param => p('options', 'object', call, { optional: true });
const VIEW = Buffer.alloc(8);
const SIZE_RANGE: Array<[unknown, string]> = [[0, 'a positive safe integer'], [-1, 'a positive safe integer'], [1.5, 'a positive safe integer'], [NaN, 'a positive safe integer'], [Infinity, 'a positive safe integer'], [2 ** 53, 'a positive safe integer']];
const PID_RANGE: Array<[unknown, string]> = [[0, 'an integer from 1 to 4194304'], [-5, 'an integer from 1 to 4194304'], [1.5, 'an integer from 1 to 4194304'], [NaN, 'an integer from 1 to 4194304'], [4194305, 'an integer from 1 to 4194304']];
const ROOT_RANGE: Array<[unknown, string]> = [['', 'a non-empty path']];
const FRACTION_RANGE: Array<[unknown, string]> = [[-1, 'an integer from 0 to 100'], [101, 'an integer from 0 to 100'], [1.5, 'an integer from 0 to 100'], [NaN, 'an integer from 0 to 100']];
const SECONDS_RANGE: Array<[unknown, string]> = [[0, 'a finite number of seconds > 0'], [-1, 'a finite number of seconds > 0'], [NaN, 'a finite number of seconds > 0'], [Infinity, 'a finite number of seconds > 0']];
const root = (call: (options: object) => unknown): Param => p('options.root', 'string', (bad) => call({ root: bad }), { optional: true, outOfRange: ROOT_RANGE });

/** One row per exported function. */
const TABLE: Record<string, Param[]> = {
  isSupported: [],
  supportInfo: [],
  enableMerge: [],
  isMergeEnabled: [],
  pageSize: [],
  disableMerge: [
    options((bad) => api.disableMerge(bad as never)),
    p('options.dryRun', 'boolean', (bad) => api.disableMerge({ dryRun: bad } as never), { optional: true }),
    p('options.requireHeadroom', 'boolean', (bad) => api.disableMerge({ requireHeadroom: bad } as never), { optional: true }),
  ],
  allocMergeable: [
    p('size', 'number', (bad) => api.allocMergeable(bad as number), { outOfRange: SIZE_RANGE }),
    options((bad) => api.allocMergeable(1, bad as never)),
    p('options.label', 'string', (bad) => api.allocMergeable(1, { label: bad } as never), { optional: true }),
    p('options.hugePages', 'boolean', (bad) => api.allocMergeable(1, { hugePages: bad } as never), { optional: true }),
  ],
  markMergeable: [
    p('view', 'view', (bad) => api.markMergeable(bad as never)),
    options((bad) => api.markMergeable(VIEW, bad as never)),
    p('options.label', 'string', (bad) => api.markMergeable(VIEW, { label: bad } as never), { optional: true }),
    p('options.verify', 'boolean', (bad) => api.markMergeable(VIEW, { verify: bad } as never), { optional: true }),
  ],
  unmarkMergeable: [
    p('view', 'view', (bad) => api.unmarkMergeable(bad as never)),
    options((bad) => api.unmarkMergeable(VIEW, bad as never)),
    p('options.dryRun', 'boolean', (bad) => api.unmarkMergeable(VIEW, { dryRun: bad } as never), { optional: true }),
    p('options.requireHeadroom', 'boolean', (bad) => api.unmarkMergeable(VIEW, { requireHeadroom: bad } as never), { optional: true }),
  ],
  markSensitive: [
    p('view', 'view', (bad) => api.markSensitive(bad as never)),
    options((bad) => api.markSensitive(VIEW, bad as never)),
    p('options.label', 'string', (bad) => api.markSensitive(VIEW, { label: bad } as never), { optional: true }),
  ],
  labelMemory: [
    p('memory', 'view', (bad) => api.labelMemory(bad as never, 'x')),
    p('label', 'string', (bad) => api.labelMemory(VIEW, bad as string), { outOfRange: [['', 'a string of 1 to 256 characters']] }),
  ],
  labelAllocations: [
    p('label', 'string', (bad) => api.labelAllocations(bad as string, () => 1), { outOfRange: [['', 'a string of 1 to 256 characters']] }),
    p('fn', 'function', (bad) => api.labelAllocations('x', bad as never)),
  ],
  publishLabels: [p('on', 'boolean', (bad) => api.publishLabels(bad as boolean), { optional: true })],
  spawnUnmerged: [
    p('command', 'string', (bad) => api.spawnUnmerged(bad as string), { outOfRange: [['', 'a non-empty string']] }),
    // spawn(command, options) is the other overload: objects and null are options.
    p('args', 'array', (bad) => api.spawnUnmerged('true', bad as never), { optional: true, alsoAccepts: ['null', 'object', 'view', 'arraybuffer', 'AbortSignal'] }),
    p('args[0]', 'string', (bad) => api.spawnUnmerged('true', [bad as string])),
    options((bad) => api.spawnUnmerged('true', [], bad as never)),
  ],
  ksmStat: [
    p('pid', 'number', (bad) => api.ksmStat(bad as number), { optional: true, outOfRange: PID_RANGE }),
    options((bad) => api.ksmStat(undefined, bad as never)),
    root((o) => api.ksmStat(undefined, o as never)),
  ],
  parseKsmStat: [p('text', 'string', (bad) => api.parseKsmStat(bad as string))],
  parseSmaps: [p('text', 'string', (bad) => api.parseSmaps(bad as string))],
  systemStat: [options((bad) => api.systemStat(bad as never)), root((o) => api.systemStat(o as never))],
  setKnobs: [
    p('knobs', 'object', (bad) => api.setKnobs(bad as never)),
    p('knobs.run', 'number', (bad) => api.setKnobs({ run: bad } as never), { optional: true, outOfRange: [[3, '0, 1 or 2'], [-1, '0, 1 or 2'], [1.5, '0, 1 or 2']] }),
    p('knobs.pagesToScan', 'number', (bad) => api.setKnobs({ pagesToScan: bad } as never), { optional: true, outOfRange: [[0, 'an integer from 1 to 4294967295'], [2 ** 32, 'an integer from 1 to 4294967295'], [NaN, 'an integer from 1 to 4294967295']] }),
    p('knobs.useZeroPages', 'boolean', (bad) => api.setKnobs({ useZeroPages: bad } as never), { optional: true }),
    p('knobs.advisorMode', 'string', (bad) => api.setKnobs({ advisorMode: bad } as never), { optional: true, outOfRange: [['auto', "'none' or 'scan-time'"]] }),
    options((bad) => api.setKnobs({}, bad as never)),
    root((o) => api.setKnobs({}, o as never)),
  ],
  // metrics
  collectDefaultKsmMetrics: [
    options((bad) => api.collectDefaultKsmMetrics(bad as never)),
    root((o) => api.collectDefaultKsmMetrics({ register: new Registry(), ...o } as never)),
    p('options.prefix', 'string', (bad) => api.collectDefaultKsmMetrics({ register: new Registry(), prefix: bad } as never), {
      optional: true,
      outOfRange: [['bad prefix', 'a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)']],
    }),
    p('options.maxLabels', 'number', (bad) => api.collectDefaultKsmMetrics({ register: new Registry(), maxLabels: bad } as never), {
      optional: true,
      outOfRange: [[-1, 'an integer from 0 to 10000'], [1.5, 'an integer from 0 to 10000'], [10_001, 'an integer from 0 to 10000']],
    }),
    p('options.exact', 'boolean', (bad) => api.collectDefaultKsmMetrics({ register: new Registry(), exact: bad } as never), { optional: true }),
  ],
  collectMachineKsmMetrics: [
    options((bad) => api.collectMachineKsmMetrics(bad as never)),
    root((o) => api.collectMachineKsmMetrics({ register: new Registry(), ...o } as never)),
    p('options.fairShare', 'boolean', (bad) => api.collectMachineKsmMetrics({ register: new Registry(), fairShare: bad } as never), { optional: true }),
    p('options.exact', 'boolean', (bad) => api.collectMachineKsmMetrics({ register: new Registry(), exact: bad } as never), { optional: true }),
    p('options.perProcess', 'boolean', (bad) => api.collectMachineKsmMetrics({ register: new Registry(), perProcess: bad } as never), { optional: true }),
    p('options.maxGroups', 'number', (bad) => api.collectMachineKsmMetrics({ register: new Registry(), maxGroups: bad } as never), {
      optional: true,
      outOfRange: [[-1, 'an integer from 0 to 100000'], [1.5, 'an integer from 0 to 100000'], [100_001, 'an integer from 0 to 100000']],
    }),
  ],
  scanTime: [p('stat', 'object', (bad) => api.scanTime(bad as never))],
  // estimate: estimate(targets?, options?) rejects before reading any process.
  estimate: [
    p('targets', 'number', (bad) => api.estimate(bad as never), {
      optional: true,
      // 'self' is the one string it takes: any other (the kind's 'x') is of the wrong type.
      // An object literal is the options (estimate({ all: true })).
      alsoAccepts: ['array', 'object'],
      expected: "a pid, an array of pids or 'self'",
      outOfRange: [...PID_RANGE, [[], 'at least one pid']],
    }),
    p('targets[0]', 'number', (bad) => api.estimate([bad as number]), { outOfRange: PID_RANGE }),
    options((bad) => api.estimate(undefined, bad as never)),
    p('options.pids', 'array', (bad) => api.estimate(undefined, { pids: bad } as never), { optional: true, expected: 'an array of pids' }),
    p('options.pids[0]', 'number', (bad) => api.estimate(undefined, { pids: [bad] } as never), { outOfRange: PID_RANGE }),
    p('options.intervalMs', 'number', (bad) => api.estimate(undefined, { intervalMs: bad } as never), {
      optional: true,
      outOfRange: [[-1, 'a number from 0 to 86400000'], [86_400_001, 'a number from 0 to 86400000'], [NaN, 'a number from 0 to 86400000'], [Infinity, 'a number from 0 to 86400000']],
    }),
    p('options.onlyMergeable', 'boolean', (bad) => api.estimate(undefined, { onlyMergeable: bad } as never), { optional: true }),
    p('options.minRegionBytes', 'number', (bad) => api.estimate(undefined, { minRegionBytes: bad } as never), {
      optional: true,
      outOfRange: [[-1, 'a number from 0 to 9007199254740991'], [NaN, 'a number from 0 to 9007199254740991'], [Infinity, 'a number from 0 to 9007199254740991']],
    }),
    p('options.useZeroPages', 'boolean', (bad) => api.estimate(undefined, { useZeroPages: bad } as never), { optional: true }),
    p('options.maxPageSharing', 'number', (bad) => api.estimate(undefined, { maxPageSharing: bad } as never), {
      optional: true,
      outOfRange: [[1, 'an integer from 2 to 1000000000'], [1.5, 'an integer from 2 to 1000000000'], [1e9 + 1, 'an integer from 2 to 1000000000'], [NaN, 'an integer from 2 to 1000000000']],
    }),
    p('options.threads', 'number', (bad) => api.estimate(undefined, { threads: bad } as never), {
      optional: true,
      outOfRange: [[0, 'an integer from 1 to 256'], [1.5, 'an integer from 1 to 256'], [257, 'an integer from 1 to 256'], [NaN, 'an integer from 1 to 256']],
    }),
    p('options.all', 'boolean', (bad) => api.estimate(undefined, { all: bad } as never), { optional: true }),
    p('options.top', 'number', (bad) => api.estimate({ all: true, top: bad } as never), {
      optional: true,
      outOfRange: [[-1, 'an integer from 0 to 1000000'], [1.5, 'an integer from 0 to 1000000'], [NaN, 'an integer from 0 to 1000000']],
    }),
    p('options.signal', 'AbortSignal', (bad) => api.estimate(undefined, { signal: bad } as never), { optional: true }),
    p('options.onProgress', 'function', (bad) => api.estimate(undefined, { onProgress: bad } as never), { optional: true }),
  ],
  // doctor
  doctor: [
    options((bad) => api.doctor(bad as never)),
    p('options.pid', 'number', (bad) => api.doctor({ pid: bad } as never), { optional: true, outOfRange: PID_RANGE }),
    root((o) => api.doctor(o as never)),
    p('options.handlesSecrets', 'boolean', (bad) => api.doctor({ handlesSecrets: bad } as never), { optional: true }),
    p('options.targetScanTimeSec', 'number', (bad) => api.doctor({ targetScanTimeSec: bad } as never), { optional: true, outOfRange: SECONDS_RANGE }),
    p('options.maxScanTimeSec', 'number', (bad) => api.doctor({ maxScanTimeSec: bad } as never), {
      optional: true,
      // Below the scan time it aims at (default 120 s) it would always fire.
      outOfRange: [...SECONDS_RANGE, [60, 'at least options.targetScanTimeSec (120)']],
    }),
    p('options.churnWindowMs', 'number', (bad) => api.doctor({ churnWindowMs: bad } as never), {
      optional: true,
      outOfRange: [[-1, 'an integer from 0 to 600000'], [1.5, 'an integer from 0 to 600000'], [NaN, 'an integer from 0 to 600000']],
    }),
  ],
  // profit and regions
  regions: [
    p('pid', 'number', (bad) => api.regions(bad as number), { optional: true, outOfRange: PID_RANGE }),
    options((bad) => api.regions(undefined, bad as never)),
    root((o) => api.regions(undefined, o as never)),
  ],
  profit: [
    p('pid', 'number', (bad) => api.profit(bad as number), { optional: true, outOfRange: PID_RANGE }),
    options((bad) => api.profit(undefined, bad as never)),
    root((o) => api.profit(undefined, o as never)),
    p('options.exact', 'boolean', (bad) => api.profit(undefined, { exact: bad } as never), { optional: true }),
  ],
  systemProfit: [options((bad) => api.systemProfit(bad as never)), root((o) => api.systemProfit(o as never))],
  formatBytes: [
    p('bytes', 'number', (bad) => api.formatBytes(bad as number), { optional: true }),
    options((bad) => api.formatBytes(1, bad as never)),
    p('options.fractionDigits', 'number', (bad) => api.formatBytes(1, { fractionDigits: bad } as never), { optional: true, outOfRange: FRACTION_RANGE }),
    p('options.signed', 'boolean', (bad) => api.formatBytes(1, { signed: bad } as never), { optional: true }),
  ],
  formatPercent: [
    p('ratio', 'number', (bad) => api.formatPercent(bad as number), { optional: true }),
    p('fractionDigits', 'number', (bad) => api.formatPercent(0.5, bad as number), { optional: true, outOfRange: FRACTION_RANGE }),
  ],
  formatTable: [
    p('rows', 'array', (bad) => api.formatTable(bad as never, [])),
    p('columns', 'array', (bad) => api.formatTable([], bad as never)),
    // Columns are checked whole even with no rows to draw.
    p('columns[0]', 'object', (bad) => api.formatTable([], [bad as never])),
    p('columns[0].header', 'string', (bad) => api.formatTable([], [{ header: bad, value: () => 1 } as never])),
    p('columns[0].value', 'function', (bad) => api.formatTable([], [{ header: 'h', value: bad } as never])),
    p('columns[0].align', 'string', (bad) => api.formatTable([], [{ header: 'h', value: () => 1, align: bad } as never]), {
      optional: true,
      outOfRange: [['center', "'left' or 'right'"]],
    }),
    p('columns[0].format', 'function', (bad) => api.formatTable([], [{ header: 'h', value: () => 1, format: bad } as never]), { optional: true }),
    options((bad) => api.formatTable([], [], bad as never)),
    p('options.style', 'string', (bad) => api.formatTable([], [], { style: bad } as never), { optional: true, outOfRange: [['fancy', "'plain' or 'box'"]] }),
  ],
  scanSmaps: [p('data', 'view', (bad) => api.scanSmaps(bad as never))],
  ksmProcesses: [
    options((bad) => api.ksmProcesses(bad as never)),
    root((o) => api.ksmProcesses(o as never)),
    p('options.candidates', 'boolean', (bad) => api.ksmProcesses({ candidates: bad } as never), { optional: true }),
  ],
  profitByGroup: [
    options((bad) => api.profitByGroup(bad as never)),
    root((o) => api.profitByGroup(o as never)),
    p('options.by', 'string', (bad) => api.profitByGroup({ by: bad } as never), { optional: true, outOfRange: [['node', "'cgroup', 'unit', 'pod' or 'container'"]] }),
    p('options.exact', 'boolean', (bad) => api.profitByGroup({ exact: bad } as never), { optional: true }),
  ],
  parseCgroupName: [p('path', 'string', (bad) => api.parseCgroupName(bad as string))],
  waitForMerge: [
    options((bad) => api.waitForMerge(bad as never)),
    p('options.fullScans', 'number', (bad) => api.waitForMerge({ fullScans: bad } as never), { optional: true, outOfRange: [[0, 'an integer from 1 to 1000000'], [1.5, 'an integer from 1 to 1000000'], [1_000_001, 'an integer from 1 to 1000000']] }),
    p('options.timeoutMs', 'number', (bad) => api.waitForMerge({ timeoutMs: bad } as never), { optional: true, outOfRange: [[-1, 'a number >= 0'], [NaN, 'a number >= 0']] }),
    p('options.signal', 'AbortSignal', (bad) => api.waitForMerge({ signal: bad } as never), { optional: true }),
  ],
};

/** Every kind of value, by name; the ones a parameter accepts are skipped. */
const detached = new ArrayBuffer(8);
structuredClone(detached, { transfer: [detached] });
const KINDS: Record<string, unknown> = {
  undefined: undefined,
  null: null,
  boolean: true,
  number: 42,
  string: 'x',
  bigint: 1n,
  symbol: Symbol('s'),
  object: {},
  array: [],
  function: () => 1,
  view: new Uint8Array(4),
  arraybuffer: new ArrayBuffer(4),
  AbortSignal: new AbortController().signal,
};
const ACCEPTS: Record<Accepts, string[]> = {
  number: ['number'],
  string: ['string'],
  boolean: ['boolean'],
  // An options object: any non-null, non-array object (a view or a signal too).
  object: ['object', 'view', 'arraybuffer', 'AbortSignal'],
  view: ['view', 'arraybuffer'],
  array: ['array'],
  AbortSignal: ['AbortSignal'],
  function: ['function'],
};
const EXPECTED: Record<Accepts, string> = {
  number: 'of type number',
  string: 'of type string',
  boolean: 'of type boolean',
  object: 'an object',
  view: 'an ArrayBuffer, a TypedArray, a Buffer or a DataView',
  array: 'an array',
  AbortSignal: 'an AbortSignal',
  // Node's own word for callbacks (validateFunction).
  function: 'of type function',
};

/** How a message names the value it got. */
function received(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an instance of ${(value as object).constructor.name}`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'string') return `a string (${JSON.stringify(value)})`;
  return `${typeof value} (${String(value)})`;
}

/** How a range message names the value it got: String(), but "" and [] visible. */
function rangeReceived(value: unknown): string {
  if (value === '') return '""';
  if (Array.isArray(value)) return JSON.stringify(value);
  return String(value);
}

/** Runs a call, awaiting a returned promise: the error, thrown or rejected. */
async function failure(call: () => unknown): Promise<unknown> {
  try {
    const result = call();
    if (result instanceof Promise) await result;
  } catch (error) {
    return error;
  }
  return undefined;
}

function isClass(value: unknown): boolean {
  return typeof value === 'function' && /^class\b/.test(Function.prototype.toString.call(value));
}

describe('the table covers the public API', () => {
  const functions = Object.entries(api).filter(([, value]) => typeof value === 'function' && !isClass(value)).map(([name]) => name);

  it('every exported function has a row, and every row an export', () => {
    expect(functions.filter((name) => !(name in TABLE)), 'exports without a row in TABLE').toEqual([]);
    expect(Object.keys(TABLE).filter((name) => !functions.includes(name)), 'rows without an export').toEqual([]);
  });

  it('every row lists as many parameters as the function declares', () => {
    for (const name of functions) {
      const declared = (api as Record<string, unknown> as Record<string, (...args: unknown[]) => unknown>)[name]!.length;
      const rowParams = new Set((TABLE[name] ?? []).map((param) => param.name.split('.')[0]!.replace(/\[\d+\]$/, ''))).size;
      expect(rowParams, `${name} declares ${declared} parameter(s)`).toBeGreaterThanOrEqual(declared);
    }
  });
});

for (const [fn, params] of Object.entries(TABLE)) {
  if (params.length === 0) continue;
  describe(fn, () => {
    for (const param of params) {
      const accepted = new Set([...ACCEPTS[param.accepts], ...(param.alsoAccepts ?? []), ...(param.optional ? ['undefined'] : [])]);
      for (const [kind, value] of Object.entries(KINDS)) {
        if (accepted.has(kind)) continue;
        it(`${param.name}: ${kind} -> TypeError ERR_INVALID_ARG_TYPE`, async () => {
          const error = await failure(() => param.call(value));
          expect(error).toBeInstanceOf(TypeError);
          expect(error).toMatchObject({
            code: 'ERR_INVALID_ARG_TYPE',
            message: `The "${param.name}" argument must be ${param.expected ?? EXPECTED[param.accepts]}. Received ${received(value)}`,
          });
        });
      }
      for (const [value, must] of param.outOfRange ?? []) {
        it(`${param.name}: ${rangeReceived(value)} -> RangeError ERR_OUT_OF_RANGE`, async () => {
          const error = await failure(() => param.call(value));
          expect(error).toBeInstanceOf(RangeError);
          expect(error).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
          expect((error as Error).message).toBe(`The value of "${param.name}" is out of range. It must be ${must}. Received ${rangeReceived(value)}`);
        });
      }
      if (param.accepts === 'view') {
        it(`${param.name}: a detached ArrayBuffer -> TypeError ERR_INVALID_STATE`, async () => {
          const error = await failure(() => param.call(detached));
          expect(error).toBeInstanceOf(TypeError);
          expect(error).toMatchObject({ code: 'ERR_INVALID_STATE', message: `The "${param.name}" argument's ArrayBuffer is detached` });
        });
        it(`${param.name}: a SharedArrayBuffer view -> TypeError ERR_INVALID_ARG_TYPE`, async () => {
          const shared = new Uint8Array(new SharedArrayBuffer(8));
          const error = await failure(() => param.call(shared));
          expect(error).toBeInstanceOf(TypeError);
          expect(error).toMatchObject({
            code: 'ERR_INVALID_ARG_TYPE',
            message: `The "${param.name}" argument must be backed by an ArrayBuffer (SharedArrayBuffer is not supported). Received an instance of Uint8Array`,
          });
        });
      }
    }
  });
}

describe('setKnobs', () => {
  it('an unknown knob is a RangeError naming the known ones, before any write', async () => {
    const error = await failure(() => api.setKnobs({ constructor: 1 } as never));
    expect(error).toBeInstanceOf(RangeError);
    expect(error).toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/^The value of "knobs" is out of range\. It must be an object of known knobs \(run, pagesToScan, .*\)\. Received constructor$/) });
  });
});
