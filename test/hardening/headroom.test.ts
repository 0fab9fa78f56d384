/**
 * The limits the unmerge preflight reads, from fixture trees: MemAvailable,
 * and the least headroom over a cgroup and its ancestors (v2 and v1).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { cgroupHeadroom, memAvailable } from '../../lib/kernel/memory-limits.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-headroom-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function tree(files: Record<string, string>): string {
  const root = path.join(tmp, String(n++));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), text);
  }
  return root;
}

describe('memAvailable', () => {
  it('reads MemAvailable in bytes, and nothing from a kernel without it or a garbled figure', () => {
    expect(memAvailable(tree({ 'proc/meminfo': 'MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   12345 kB\n' }))).toBe(12345 * 1024);
    expect(memAvailable(tree({ 'proc/meminfo': 'MemTotal: 1 kB\nMemFree: 1 kB\n' }))).toBeUndefined();
    expect(memAvailable(tree({ 'proc/meminfo': 'MemAvailable: 99999999999999999999 kB\n' }))).toBeUndefined();
    expect(memAvailable(tree({}))).toBeUndefined();
  });
});

describe('cgroupHeadroom', () => {
  it('v2: the least of max - current over the cgroup and its ancestors; "max" is no limit', () => {
    const root = tree({
      'proc/self/cgroup': '0::/app/web\n',
      'sys/fs/cgroup/app/memory.max': '1000000\n',
      'sys/fs/cgroup/app/memory.current': '900000\n',
      'sys/fs/cgroup/app/web/memory.max': 'max\n',
      'sys/fs/cgroup/app/web/memory.current': '500000\n',
    });
    expect(cgroupHeadroom(root)).toEqual({ cgroup: '/app/web', headroom: 100000 });
  });

  it('v2: over the limit is no headroom, not a negative one', () => {
    const root = tree({ 'proc/self/cgroup': '0::/a\n', 'sys/fs/cgroup/a/memory.max': '100\n', 'sys/fs/cgroup/a/memory.current': '200\n' });
    expect(cgroupHeadroom(root)).toEqual({ cgroup: '/a', headroom: 0 });
  });

  it('v1 (hybrid): the memory line wins over 0::, unlimited is the huge page-aligned number', () => {
    const root = tree({
      'proc/self/cgroup': '9:name=systemd:/\n4:memory,foo:/svc\n0::/\n',
      'sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n',
      'sys/fs/cgroup/memory/memory.usage_in_bytes': '5\n',
      'sys/fs/cgroup/memory/svc/memory.limit_in_bytes': '4096000\n',
      'sys/fs/cgroup/memory/svc/memory.usage_in_bytes': '96000\n',
    });
    expect(cgroupHeadroom(root)).toEqual({ cgroup: '/svc', headroom: 4000000 });
  });

  it('no limits anywhere, unreadable or garbled files: no headroom figure, never NaN', () => {
    expect(cgroupHeadroom(tree({ 'proc/self/cgroup': '0::/\n' }))).toEqual({ cgroup: '/', headroom: undefined });
    expect(cgroupHeadroom(tree({}))).toEqual({ cgroup: undefined, headroom: undefined });
    const garbled = tree({ 'proc/self/cgroup': '0::/x\n', 'sys/fs/cgroup/x/memory.max': 'lots\n', 'sys/fs/cgroup/x/memory.current': '1\n' });
    expect(cgroupHeadroom(garbled)).toEqual({ cgroup: '/x', headroom: undefined });
  });
});
