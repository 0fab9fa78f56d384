/**
 * The one VMA classification (lib/kernel/vma.ts) on real smaps captures.
 * The kernel is the oracle for KSM compatibility: in a process under
 * merge-any (linux-6.18) and in one that advised every mapping
 * MADV_MERGEABLE (linux-6.18-shared), the kernel set `mg` on exactly the
 * VMAs vma_ksm_compatible() accepts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { parseSmaps, type SmapsVma } from '../lib/index.js';
import { anonymousLike, ksmCompatible, ksmRefusals, regionKind, whyNotMergeable } from '../lib/kernel/vma.js';
import { plan } from '../lib/report/estimate.js';
import { FIXTURES } from './helpers/ksm.js';

const SMAPS = path.join(FIXTURES, 'smaps');

function vmas(name: string): SmapsVma[] {
  return parseSmaps(fs.readFileSync(path.join(SMAPS, `${name}.smaps`), 'utf8')).vmas;
}

function at(list: SmapsVma[], start: string): SmapsVma {
  const vma = list.find((entry) => entry.start === BigInt(`0x${start}`));
  if (vma === undefined) throw new Error(`no VMA at 0x${start}`);
  return vma;
}

describe('ksmCompatible() agrees with the kernel', () => {
  it.each(['linux-6.18', 'linux-6.18-shared'])('%s: mg is set on exactly the compatible VMAs', (name) => {
    const list = vmas(name);
    expect(list.length).toBeGreaterThan(5);
    const verdicts = list.map((vma) => [`${vma.start.toString(16)} ${vma.pathname}`, ksmCompatible(vma)]);
    const kernel = list.map((vma) => [`${vma.start.toString(16)} ${vma.pathname}`, vma.vmFlags.includes('mg')]);
    expect(verdicts).toEqual(kernel);
  });
});

describe('the kernel areas of a 6.18 capture', () => {
  const list = vmas('linux-6.18');
  const byPath = (pathname: string): SmapsVma => list.find((vma) => vma.pathname === pathname)!;

  it('names them, and says why KSM refuses each', () => {
    expect(regionKind(byPath('[vvar]')).kind).toBe('vvar');
    expect(regionKind(byPath('[vvar_vclock]')).kind).toBe('vvar');
    expect(ksmRefusals(byPath('[vvar]'))).toEqual(['PFN map', 'I/O mapping', 'VM_DONTEXPAND mapping']);
    expect(regionKind(byPath('[vdso]')).kind).toBe('vdso');
    expect(whyNotMergeable(byPath('[vdso]'))).toBe('VM_DONTEXPAND mapping');
    expect(regionKind(byPath('[vsyscall]')).kind).toBe('vsyscall');
    expect(whyNotMergeable(byPath('[vsyscall]'))).toBe('the vsyscall page is not a real mapping');
    for (const name of ['[vvar]', '[vdso]', '[vsyscall]', '[stack]']) expect(anonymousLike(byPath(name)), name).toBe(false);
  });

  it('tells anonymous memory from files by header alone', () => {
    const kinds = new Map<string, number>();
    for (const vma of list) {
      const { kind } = regionKind(vma);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      // No shared memory in this capture: anonymous-like is exactly "no file and not a kernel area but the heap".
      const fileLess = vma.inode === 0 && (vma.pathname === '' || vma.pathname === '[heap]');
      expect(anonymousLike(vma), `${vma.start.toString(16)} ${vma.pathname}`).toBe(fileLess);
    }
    // rw-p anonymous (V8, malloc), one rwxp (V8 code), two ---p reservations, files.
    expect(kinds.get('anonymous')).toBe(6);
    expect(kinds.get('jit-code')).toBe(1);
    expect(kinds.get('reserved')).toBe(2);
    expect(kinds.get('heap')).toBe(1);
    expect(kinds.get('stack')).toBe(1);
    expect(kinds.get('file')).toBe(list.filter((vma) => vma.inode !== 0).length);
    expect(kinds.get('file')).toBe(13);
  });
});

describe('shared memory of a 6.18 capture', () => {
  const list = vmas('linux-6.18-shared');

  it('memfd, SysV and MAP_SHARED|MAP_ANONYMOUS are shared-memory: anonymous data KSM refuses', () => {
    for (const start of ['7ff5520a6000', '7ff5521a6000', '7ff5523a6000', '7ff5524a6000']) {
      const vma = at(list, start);
      expect(vma.perms).toBe('rw-s');
      expect(regionKind(vma), vma.pathname).toEqual({ kind: 'shared-memory', anonName: undefined });
      expect(anonymousLike(vma), vma.pathname).toBe(true);
      expect(whyNotMergeable(vma)).toBe('shared mapping (only private anonymous memory merges)');
    }
    expect(at(list, '7ff5521a6000').pathname).toBe('/SYSV00000000 (deleted)');
    expect(at(list, '7ff5523a6000').pathname).toBe('/dev/zero (deleted)');
  });

  it('private anonymous memory merges, /dev/zero mapped MAP_PRIVATE included', () => {
    for (const start of ['7ff5522a6000', '7ff551fa6000']) {
      const vma = at(list, start);
      expect(vma.perms).toBe('rw-p');
      expect(regionKind(vma).kind).toBe('anonymous');
      expect(ksmRefusals(vma)).toEqual([]);
      expect(anonymousLike(vma)).toBe(true);
    }
    expect(at(list, '7ff551fa6000').pathname).toBe('/dev/zero');
  });
});

describe('headers no capture here shows', () => {
  // The forms fs/proc/task_mmu.c prints: [anon:] and [anon_shmem:] need CONFIG_ANON_VMA_NAME.
  const vma = (pathname: string, perms: string, inode: number, vmFlags: string[]) => ({ pathname, perms, inode, vmFlags });

  it('named anonymous memory, private and shared', () => {
    const named = vma('[anon:weights]', 'rw-p', 0, ['rd', 'wr', 'mg']);
    expect(regionKind(named)).toEqual({ kind: 'named-anonymous', anonName: 'weights' });
    expect(anonymousLike(named)).toBe(true);
    const shmem = vma('[anon_shmem:cache]', 'rw-s', 7, ['rd', 'wr', 'sh', 'ms']);
    expect(regionKind(shmem)).toEqual({ kind: 'shared-memory', anonName: 'cache' });
    expect(anonymousLike(shmem)).toBe(true);
    expect(ksmCompatible(shmem)).toBe(false);
  });

  it('hugetlb files hold anonymous data; device memory does not', () => {
    const huge = vma('/anon_hugepage (deleted)', 'rw-p', 1234, ['rd', 'wr', 'ht']);
    expect(regionKind(huge).kind).toBe('file');
    expect(anonymousLike(huge)).toBe(true);
    expect(whyNotMergeable(huge)).toBe('hugetlb mapping');
    const device = vma('/dev/dri/renderD128', 'rw-s', 612, ['rd', 'wr', 'sh', 'io', 'pf']);
    expect(regionKind(device).kind).toBe('shared-memory');
    expect(anonymousLike(device)).toBe(false);
    expect(whyNotMergeable(device)).toBe('shared mapping (only private anonymous memory merges), PFN map, I/O mapping');
  });
});

describe('estimate() plans with the same verdicts', () => {
  it.each(['linux-6.18', 'linux-6.18-shared'])('%s: what the kernel left without mg is incompatible, with the reason', (name) => {
    const list = vmas(name);
    const p = plan(1, list, false, 0, 4096);
    list.forEach((vma, i) => {
      const label = `${vma.start.toString(16)} ${vma.pathname}`;
      expect(p.status[i] === 'incompatible', label).toBe(!vma.vmFlags.includes('mg'));
      if (p.status[i] === 'incompatible') expect(p.reason[i], label).toBe(whyNotMergeable(vma));
    });
    if (name === 'linux-6.18') {
      expect(p.reason[list.findIndex((vma) => vma.pathname === '[vsyscall]')]).toBe('the vsyscall page is not a real mapping');
    }
  });
});
