/**
 * CMakeLists.txt builds the same addon as binding.gyp (the build of record):
 * same sources, and the .node it makes loads and works. The build is done
 * offline: package.json's `binary.napi_versions` makes cmake-js take Node's
 * headers from the node-api-headers package.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PAGE, ROOT, rawSmapsRange } from './helpers/ksm.js';

const run = promisify(execFile);

/** binding.gyp's sources: [common, linux-only]. */
function gypSources(): { common: string[]; linux: string[] } {
  // binding.gyp is a Python literal (comments, single quotes): let Python read it.
  const json = execFileSync('python3', ['-c', 'import ast, json, sys; print(json.dumps(ast.literal_eval(open(sys.argv[1]).read())))', path.join(ROOT, 'binding.gyp')], { encoding: 'utf8' });
  const gyp = JSON.parse(json) as {
    targets: Array<{ target_name: string; sources: string[]; conditions?: Array<[string, { sources?: string[] }]> }>;
  };
  const target = gyp.targets.find((t) => t.target_name === 'ksm');
  if (!target) throw new Error('binding.gyp has no "ksm" target');
  const linux = (target.conditions ?? []).filter(([cond]) => cond === "OS=='linux'").flatMap(([, body]) => body.sources ?? []);
  return { common: [...target.sources].sort(), linux: linux.sort() };
}

/** CMakeLists.txt's sources: set(KSM_SOURCES ...) and the Linux list(APPEND ...). */
function cmakeSources(): { common: string[]; linux: string[] } {
  const text = fs.readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8').replace(/#.*$/gm, '');
  const words = (body: string | undefined): string[] => (body ?? '').split(/\s+/).filter(Boolean).sort();
  const common = /set\(KSM_SOURCES\s+([^)]*)\)/.exec(text)?.[1];
  const linuxBlock = /if\(CMAKE_SYSTEM_NAME STREQUAL "Linux"\)\s*list\(APPEND KSM_SOURCES\s+([^)]*)\)/.exec(text)?.[1];
  return { common: words(common), linux: words(linuxBlock) };
}

describe('CMakeLists.txt', () => {
  it('lists the same sources as binding.gyp, Linux-only ones behind the same condition', () => {
    const gyp = gypSources();
    const cmake = cmakeSources();
    expect(gyp.common.length).toBeGreaterThan(0);
    expect(gyp.linux.length).toBeGreaterThan(0);
    expect(cmake).toEqual(gyp);
    for (const source of [...gyp.common, ...gyp.linux]) expect(fs.existsSync(path.join(ROOT, source))).toBe(true);
  });

  describe('cmake-js build', () => {
    let out: string;
    let addon: {
      supported: boolean;
      alloc(size: number, advices: number[]): Buffer;
      madvise(view: ArrayBufferView, advice: number): { address: bigint; length: number };
      viewRange(view: ArrayBufferView): { address: bigint; length: number };
      pageSize(): number;
      constants: { MADV_MERGEABLE: number; MADV_UNMERGEABLE: number };
    };

    beforeAll(async () => {
      out = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-cmake-'));
      // No network: node-api-headers and node-addon-api come from node_modules.
      const cli = path.join(ROOT, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
      await run(process.execPath, [cli, 'compile', '--directory', ROOT, '--out', out], {
        cwd: ROOT,
        env: { ...process.env, npm_config_offline: 'true' },
        maxBuffer: 64 * 1024 * 1024,
      });
      const built = path.join(out, 'Release', 'ksm.node');
      expect(fs.existsSync(built)).toBe(true);
      addon = createRequire(path.join(ROOT, 'package.json'))(built) as typeof addon;
    }, 600_000);

    afterAll(() => {
      if (out) fs.rmSync(out, { recursive: true, force: true });
    });

    it('loads on Linux with the full binding, not the stub', () => {
      expect(addon.supported).toBe(true);
      expect(addon.pageSize()).toBe(PAGE);
      for (const name of ['alloc', 'madvise', 'viewRange', 'pageSize', 'setMemoryMerge', 'getMemoryMerge']) {
        expect(typeof (addon as unknown as Record<string, unknown>)[name]).toBe('function');
      }
    });

    it('allocates a mergeable mapping the kernel marks, and madvise unmarks it', () => {
      const page = addon.pageSize();
      const size = 3 * page + 1;
      const buffer = addon.alloc(size, [addon.constants.MADV_MERGEABLE]);
      expect(buffer.length).toBe(size);
      buffer.fill(0x5a);
      const { address } = addon.viewRange(buffer);
      expect(address % BigInt(page)).toBe(0n);
      const end = address + BigInt(4 * page);
      const marked = rawSmapsRange('self', address, end);
      expect(marked.flags.length).toBeGreaterThan(0);
      expect(marked.flags.every((flags) => flags.includes('mg'))).toBe(true);

      // Only whole pages inside the view: 3 of the 4 mapped pages.
      const covered = addon.madvise(buffer, addon.constants.MADV_UNMERGEABLE);
      expect(covered).toEqual({ address, length: 3 * page });
      const unmarked = rawSmapsRange('self', address, address + BigInt(3 * page));
      expect(unmarked.flags.every((flags) => !flags.includes('mg'))).toBe(true);
    });

    it('throws C++ exceptions as JavaScript errors', () => {
      expect(() => addon.alloc('big' as unknown as number, [])).toThrow(TypeError);
      expect(() => addon.alloc(-1, [])).toThrow(RangeError);
      expect(() => addon.madvise(Buffer.alloc(8192), 0x7fff)).toThrow(RangeError);
    });
  });
});
