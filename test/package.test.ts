/**
 * The package as a user gets it: `npm pack` (prepack/prepare build dist/ and
 * the prebuild), installed into a fresh project with no compiler, no make
 * and no python on PATH and no registry (`--offline`, empty cache), then
 * imported from ESM and CommonJS and type-checked as a consumer would.
 *
 * The pack runs in a copy of the sources so the checkout's dist/ and build/
 * (which other tests use while this one runs) are never rebuilt under them.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { PAGE, ROOT, requireKsm } from './helpers/ksm.js';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Result> {
  return new Promise((resolve) => {
    execFile(command, args, { ...options, maxBuffer: 64 * 1024 * 1024 }, (error: ExecFileException | null, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function must(result: Result, what: string): Result {
  if (result.code !== 0) throw new Error(`${what} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** Files the package must ship, and files it must not. */
const SHIPPED = [
  'package.json',
  'README.md',
  'binding.gyp',
  'CMakeLists.txt',
  'dist/index.js',
  'dist/index.d.ts',
  'dist/index.mjs',
  'dist/index.d.mts',
  'dist/register.js',
  'dist/register.d.ts',
  'dist/register.mjs',
  'dist/register.d.mts',
  'dist/cluster/entry.js',
  'dist/cluster/entry.d.ts',
  'dist/cluster/index.mjs',
  'dist/cluster/index.d.mts',
  'dist/cluster/preload.js',
  'native/addon.cc',
  `prebuilds/linux-${process.arch}/node-ksm.node`,
];
const NOT_SHIPPED = /^(lib|test|scripts|bench|build|build-cmake|node_modules|\.ci)\//;

const COMPILERS = ['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'make', 'gmake', 'cmake', 'ninja', 'python', 'python3'];

/** npm's `npm` or `npx` as this run has them: beside the npm that started us, else the first on PATH (not necessarily beside node). */
function npmCli(name: 'npm' | 'npx'): string {
  const started = process.env.npm_execpath;
  if (started && /npm-cli\.js$/.test(started)) return fs.realpathSync(path.join(path.dirname(started), `${name}-cli.js`));
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return fs.realpathSync(candidate);
    } catch {
      // not here
    }
  }
  throw new Error(`no ${name} on PATH`);
}

describe('npm pack, offline install without a compiler', () => {
  let tmp: string;
  let app: string;
  let env: NodeJS.ProcessEnv;
  let tripwire: string;
  let packed: { filename: string; files: Array<{ path: string }> };
  let install: Result;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-pack-'));
    const src = path.join(tmp, 'src');
    fs.cpSync(ROOT, src, {
      recursive: true,
      filter: (from) => {
        const rel = path.relative(ROOT, from);
        return !/^(node_modules|build|build-cmake|dist|prebuilds|coverage|\.git)(\/|$)/.test(rel) && !rel.endsWith('.tgz');
      },
    });
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));

    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    // prepack: the prebuild; prepare: dist/.
    const pack = must(await run(npm, ['pack', '--json', '--pack-destination', tmp], { cwd: src }), 'npm pack');
    packed = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as Array<typeof packed>)[0]!;
    // The production dependency tree, packed from our own node_modules: no
    // registry needed. Optional ones (e.g. cli-table3's @colors/colors) too.
    const tree = must(await run(npm, ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT }), 'npm ls');
    const deps = tree.stdout.split('\n').filter((dir) => dir.startsWith(path.join(ROOT, 'node_modules') + path.sep));
    for (const dir of deps) {
      must(await run(npm, ['pack', '--ignore-scripts', '--pack-destination', tmp, dir], { cwd: tmp }), `npm pack ${dir}`);
    }

    // PATH: node, npm and sh; every compiler, make and python is a tripwire that logs and fails.
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    tripwire = path.join(tmp, 'tripwire.log');
    fs.symlinkSync(process.execPath, path.join(bin, 'node'));
    fs.symlinkSync(npmCli('npm'), path.join(bin, 'npm'));
    fs.symlinkSync(npmCli('npx'), path.join(bin, 'npx'));
    fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
    for (const tool of COMPILERS) {
      fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> "${tripwire}"\nexit 127\n`, { mode: 0o755 });
    }
    env = {
      PATH: bin,
      HOME: tmp,
      npm_config_cache: path.join(tmp, 'cache'),
      npm_config_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    };

    app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    const tarballs = fs.readdirSync(tmp).filter((name) => name.endsWith('.tgz')).map((name) => path.join(tmp, name));
    install = await run(path.join(bin, 'npm'), ['install', '--foreground-scripts', ...tarballs], { cwd: app, env });
  }, 600_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('packs dist/, the prebuild and the native sources, and nothing of the repository', () => {
    const files = packed.files.map((file) => file.path);
    for (const file of SHIPPED) expect(files, file).toContain(file);
    expect(files.filter((file) => NOT_SHIPPED.test(file))).toEqual([]);
  });

  it('installs offline with no compiler: the install script finds the prebuild and builds nothing', () => {
    expect(install.code, `${install.stdout}\n${install.stderr}`).toBe(0);
    expect(fs.existsSync(tripwire) ? fs.readFileSync(tripwire, 'utf8') : '').toBe('');
    const pkg = path.join(app, 'node_modules', 'node-ksm');
    expect(fs.existsSync(path.join(pkg, 'prebuilds', `linux-${process.arch}`, 'node-ksm.node'))).toBe(true);
    expect(fs.existsSync(path.join(pkg, 'build'))).toBe(false);
    expect(install.stdout).toContain('node-gyp-build');
    expect(install.stdout + install.stderr).not.toMatch(/gyp info|gyp ERR|prebuildify/);
  });

  it('imports from ESM and CommonJS: one copy, errors match across both', async (ctx) => {
    requireKsm(ctx);
    const empty = path.join(tmp, 'empty-root');
    fs.mkdirSync(empty, { recursive: true });
    const common = (load: string): string => `
      ${load}
      const fs = require('node:fs');
      const page = ksm.pageSize();
      const buffer = ksm.allocMergeable(3 * page + 5, { label: 'pack test' });
      buffer.fill(1);
      const addon = require('node-gyp-build').resolve(require('node:path').dirname(require.resolve('node-ksm/package.json')));
      let error;
      try { ksm.systemStat({ root: ${JSON.stringify(empty)} }); } catch (e) { error = e; }
      const other = ${'OTHER'};
      console.log(JSON.stringify({
        supported: ksm.isSupported(),
        length: buffer.length,
        aligned: buffer.byteOffset === 0,
        mergeable: ksm.ksmStat().mergeable,
        addon,
        code: error && error.code,
        sameCopy: other.allocMergeable === ksm.allocMergeable,
        instanceOwn: error instanceof ksm.KsmError && error instanceof ksm.KsmUnsupportedError,
        instanceOther: error instanceof other.KsmError && error instanceof other.KsmUnsupportedError,
        notOtherClass: error instanceof other.KsmTimeoutError,
      }));`;
    fs.writeFileSync(
      path.join(app, 'esm.mjs'),
      common(`import * as ksm from 'node-ksm'; import { allocMergeable } from 'node-ksm';
        import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);
        if (allocMergeable !== ksm.allocMergeable) throw new Error('named import differs');`).replace('OTHER', "require('node-ksm')"),
    );
    fs.writeFileSync(
      path.join(app, 'cjs.cjs'),
      common(`const ksm = require('node-ksm');`).replace('OTHER', 'await import("node-ksm")').replace(/^/, '(async () => {') + '})();',
    );
    for (const file of ['esm.mjs', 'cjs.cjs']) {
      const result = must(await run(path.join(tmp, 'bin', 'node'), [file], { cwd: app, env }), file);
      expect(JSON.parse(result.stdout), file).toEqual({
        supported: true,
        length: 3 * PAGE + 5,
        aligned: true,
        mergeable: true,
        addon: path.join(fs.realpathSync(app), 'node_modules', 'node-ksm', 'prebuilds', `linux-${process.arch}`, 'node-ksm.node'),
        code: 'ERR_KSM_UNSUPPORTED',
        sameCopy: true,
        instanceOwn: true,
        instanceOther: true,
        notOtherClass: false,
      });
    }
  });

  it('`npx node-ksm exporter` works out of the box: prom-client comes with the package', async () => {
    const fixture = path.join(tmp, 'fixture-root', 'sys', 'kernel', 'mm', 'ksm');
    fs.mkdirSync(fixture, { recursive: true });
    for (const [name, value] of Object.entries({ run: '1', pages_to_scan: '100', sleep_millisecs: '20', pages_sharing: '7' })) fs.writeFileSync(path.join(fixture, name), `${value}\n`);
    fs.mkdirSync(path.join(tmp, 'fixture-root', 'proc'), { recursive: true });
    const { spawn } = await import('node:child_process');
    const child = spawn(path.join(tmp, 'bin', 'npx'), ['--offline', 'node-ksm', '--root', path.join(tmp, 'fixture-root'), 'exporter', '--port', '0', '--json'], {
      cwd: app,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // A group of its own: npx runs the exporter as a child, and both must go.
      detached: true,
    });
    try {
      let out = '';
      let err = '';
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { url: string }).url);
        });
        child.once('exit', (code) => reject(new Error(`exporter exited (${code}): ${err}`)));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const text = await (await fetch(url)).text();
      expect(text).toMatch(/^ksm_pages_sharing 7$/m);
      expect(fs.existsSync(path.join(app, 'node_modules', 'prom-client', 'package.json'))).toBe(true);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
    }
  });

  it('node-ksm/register from the installed package: --require and --import opt the process in', async (ctx) => {
    requireKsm(ctx);
    const script = "const s = require('node:fs').readFileSync('/proc/self/ksm_stat', 'utf8'); console.log(JSON.stringify(/ksm_merge_any: (\\w+)/.exec(s)[1]))";
    for (const flag of ['--require', '--import']) {
      const result = must(await run(path.join(tmp, 'bin', 'node'), [flag, 'node-ksm/register', '-e', script], { cwd: app, env }), flag);
      expect(JSON.parse(result.stdout), flag).toBe('yes');
    }
  });

  it('node-ksm/register where KSM cannot be used (no addon): warns once, starts; strict stops; quiet is quiet', async () => {
    // A copy of the installed tree whose addon is gone: what a platform without a prebuild looks like.
    const broken = path.join(tmp, 'broken-app');
    fs.cpSync(app, broken, { recursive: true });
    fs.rmSync(path.join(broken, 'node_modules', 'node-ksm', 'prebuilds'), { recursive: true, force: true });
    fs.writeFileSync(
      path.join(broken, 'cluster-app.cjs'),
      `const cluster = require('node:cluster');
       if (cluster.isPrimary) { let left = 2; for (let i = 0; i < 2; i++) cluster.fork().on('exit', () => { if (--left === 0) console.log('started'); }); }
       else process.exit(0);`,
    );
    const node = path.join(tmp, 'bin', 'node');
    const start = (extra: NodeJS.ProcessEnv): Promise<Result> =>
      run(node, ['--require', 'node-ksm/register', 'cluster-app.cjs'], { cwd: broken, env: { ...env, ...extra } });
    const warned = (text: string): number => text.split('NODE_KSM_UNAVAILABLE').length - 1;

    const plain = await start({});
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.trim()).toBe('started');
    // Primary and two workers, one warning: the workers inherit NODE_KSM_WARNED.
    expect(warned(plain.stderr), plain.stderr).toBe(1);
    expect(plain.stderr).toContain('KSM is not used by this process');

    const quiet = await start({ NODE_KSM_QUIET: '1' });
    expect(quiet.code).toBe(0);
    expect(quiet.stdout.trim()).toBe('started');
    expect(warned(quiet.stderr)).toBe(0);

    const strict = await start({ NODE_KSM_STRICT: '1' });
    expect(strict.code).not.toBe(0);
    expect(strict.stdout).toBe('');
    expect(strict.stderr).toContain('ERR_KSM_UNSUPPORTED');
  });

  it('exports node-ksm/cluster from CommonJS and ESM: node:cluster itself, one copy, with the extras', async () => {
    const script = `
      const cjs = require('node-ksm/cluster');
      import('node-ksm/cluster').then((esm) => console.log(JSON.stringify({
        same: esm.default === cjs,
        workers: cjs.workers === require('node:cluster').workers,
        forkChild: esm.forkChild === cjs.forkChild && typeof cjs.forkChild,
        status: cjs.workerStatus(),
      })));`;
    fs.writeFileSync(path.join(app, 'cluster.cjs'), script);
    const result = must(await run(path.join(tmp, 'bin', 'node'), ['cluster.cjs'], { cwd: app, env }), 'cluster.cjs');
    expect(JSON.parse(result.stdout)).toEqual({ same: true, workers: true, forkChild: 'function', status: { active: false, serving: false, ownRandom: false } });
  });

  it('type-checks a consumer .mts and .cts against the installed types', async () => {
    fs.writeFileSync(
      path.join(app, 'consumer.mts'),
      `import { allocMergeable, ksmStat, KsmError, type KsmStat, type SupportInfo, supportInfo } from 'node-ksm';
const buffer: Buffer = allocMergeable(4096, { label: 'x' });
const stat: KsmStat = ksmStat();
const pages: number | undefined = stat.mergingPages;
const info: SupportInfo = supportInfo();
try { allocMergeable(1); } catch (error) { if (error instanceof KsmError) { const code: string = error.code; void code; } }
// @ts-expect-error size must be a number
allocMergeable('4096');
void buffer; void pages; void info;
import { registration } from 'node-ksm/register';
const outcome: 'enabled' | 'off' | 'unavailable' = registration.outcome;
void outcome;
import cluster, { startupComplete, type MergeableHeapsOptions } from 'node-ksm/cluster';
const heaps: MergeableHeapsOptions = { serving: 'mergeable', startupTimeoutMs: 30_000 };
if (cluster.isPrimary) cluster.setupPrimary({ mergeableHeaps: heaps });
// @ts-expect-error not a serving mode
cluster.setupPrimary({ mergeableHeaps: { serving: 'fast' } });
const switched: boolean = startupComplete();
void switched;
`,
    );
    fs.writeFileSync(
      path.join(app, 'consumer.cts'),
      `import ksm = require('node-ksm');
const buffer: Buffer = ksm.allocMergeable(4096);
const range: ksm.MergeableRange = ksm.markMergeable(buffer);
const address: bigint = range.address;
import register = require('node-ksm/register');
const strict: boolean = register.registration.config.strict;
void strict;
// @ts-expect-error no such export
ksm.notAnExport();
void address;
import cluster = require('node-ksm/cluster');
const options: cluster.MergeableHeapsOptions = { trimMalloc: false };
const child = cluster.forkChild('worker.js', { mergeableHeaps: options });
const status: cluster.WorkerStatus = cluster.workerStatus();
void child; void status;
`,
    );
    fs.writeFileSync(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'node16',
          moduleResolution: 'node16',
          target: 'es2022',
          lib: ['es2022'],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(path.join(tmp, 'bin', 'node'), [tsc, '-p', 'tsconfig.json'], { cwd: app, env });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});
