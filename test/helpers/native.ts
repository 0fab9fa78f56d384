/**
 * Test-only native code, built from a C fixture with the system compiler
 * (`cc`) into a fresh temp dir: never into build/, never into the package.
 * A Node-API addon needs only the node-api-headers package (a dev
 * dependency): its napi_* symbols resolve against node when it loads.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

import { ROOT, unsanitizedEnv } from './ksm.js';

export interface NativeFixture {
  /** The built shared object. */
  file: string;
  /** Removes it and its temp dir. */
  remove(): void;
}

/**
 * Compiles `source` into a shared object: a Node-API addon (`.node`) when
 * `addon` is set, otherwise a plain library (e.g. for LD_PRELOAD). Throws
 * with the compiler's output when it fails or when there is no `cc`.
 */
export function buildNativeFixture(source: string, options: { addon: boolean }): NativeFixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-native-'));
  const file = path.join(dir, `${path.basename(source, '.c')}${options.addon ? '.node' : '.so'}`);
  const args = ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-o', file, source];
  if (options.addon) {
    const headers = createRequire(path.join(ROOT, 'package.json'))('node-api-headers') as { include_dir: string };
    args.unshift('-DNAPI_VERSION=8', '-I', headers.include_dir);
  }
  try {
    // The compiler is not under test: never under test:asan's preload.
    execFileSync('cc', args, { env: unsanitizedEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    const { stderr, message } = error as { stderr?: Buffer; message: string };
    throw new Error(`cc could not build ${path.relative(ROOT, source)}: ${stderr?.toString().trim() || message}`);
  }
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
