/**
 * The library's error classes: literal codes, names, and `instanceof` that
 * holds across two copies of the package (lib/ under test and the built
 * dist/ loaded through require).
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import * as lib from '../lib/index.js';
import { ROOT } from './helpers/ksm.js';

const dist = createRequire(path.join(ROOT, 'package.json'))('./dist/index.js') as typeof lib;

const cases = [
  ['KsmUnsupportedError', 'ERR_KSM_UNSUPPORTED', (m: typeof lib) => new m.KsmUnsupportedError('no CONFIG_KSM')],
  ['KsmNotMergeableError', 'ERR_KSM_NOT_MERGEABLE', (m: typeof lib) => new m.KsmNotMergeableError('shared', [])],
  ['KsmNotRunningError', 'ERR_KSM_NOT_RUNNING', (m: typeof lib) => new m.KsmNotRunningError(0)],
  ['KsmTimeoutError', 'ERR_KSM_TIMEOUT', (m: typeof lib) => new m.KsmTimeoutError('late')],
  ['KsmNoSuchProcessError', 'ERR_KSM_NO_SUCH_PROCESS', (m: typeof lib) => new m.KsmNoSuchProcessError(7)],
] as const;

describe('KsmError classes', () => {
  it.each(cases)('%s: code %s, its own name, a KsmError and an Error', (name, code, make) => {
    const error = make(lib);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
    expect((lib[name] as unknown as { CODE: string }).CODE).toBe(code);
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(lib.KsmError);
    expect(error).toBeInstanceOf(lib[name]);
    expect(error.stack).toContain(name);
    for (const [other] of cases) {
      if (other !== name) expect(error).not.toBeInstanceOf(lib[other]);
    }
  });

  it.each(cases)('%s from another copy of the package is still instanceof', (name, _code, make) => {
    const foreign = make(dist);
    expect(dist[name]).not.toBe(lib[name]);
    expect(foreign).toBeInstanceOf(lib.KsmError);
    expect(foreign).toBeInstanceOf(lib[name]);
    expect(make(lib)).toBeInstanceOf(dist[name]);
  });

  it('look-alikes are not KsmErrors', () => {
    const plain = Object.assign(new Error('x'), { code: 'ERR_KSM_TIMEOUT' });
    expect(plain).not.toBeInstanceOf(lib.KsmError);
    expect(plain).not.toBeInstanceOf(lib.KsmTimeoutError);
    expect({ code: 'ERR_KSM_TIMEOUT' }).not.toBeInstanceOf(lib.KsmTimeoutError);
    expect(null).not.toBeInstanceOf(lib.KsmError);
  });

  it('carry what the caller acts on', () => {
    expect(new lib.KsmUnsupportedError('no CONFIG_KSM')).toMatchObject({ reason: 'no CONFIG_KSM', message: 'KSM is not supported here: no CONFIG_KSM' });
    expect(new lib.KsmNotRunningError(undefined).message).toMatch(/unreadable/);
    const cause = new Error('ESRCH');
    expect(new lib.KsmNoSuchProcessError(7, { cause })).toMatchObject({ pid: 7, cause });
    const mappings = [{ start: 1n, end: 2n, pathname: '', vmFlags: ['sh'], why: 'shared' }];
    expect(new lib.KsmNotMergeableError('m', mappings).mappings).toBe(mappings);
  });
});
