/**
 * Children that run as an unprivileged user (uid and gid 65534, "nobody"
 * on Debian). Such a child must be able to read the package where it is; a
 * checkout under a private directory (/root, a 0700 home) it cannot reach.
 * Then the parts a child loads (package.json, dist/, the built addon, the
 * production node_modules, the test fixtures) are copied into a
 * world-readable temp dir for the length of the test.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'vitest';

import { ROOT } from './ksm.js';
import { needs } from './needs.js';

export const NOBODY = 65534;

export interface NobodyPackage {
  /** Where the package is, for uid 65534: the checkout itself, or a copy. */
  root: string;
  /** root/dist/index.js */
  dist: string;
  /** root/test/fixtures and root/test/hardening/fixtures */
  fixtures: string;
  hardeningFixtures: string;
  /** The environment for the child (NODE_KSM_PREBUILD pointing into the copy where it is set). */
  env: NodeJS.ProcessEnv;
  /**
   * uid, gid and cwd for spawn(), and no node flags for fork(): the test
   * worker's (vitest's --require of a file in the checkout) would not load.
   */
  as: { uid: number; gid: number; cwd: string; execArgv: string[] };
}

function layout(root: string, env: NodeJS.ProcessEnv): NobodyPackage {
  return {
    root,
    dist: path.join(root, 'dist', 'index.js'),
    fixtures: path.join(root, 'test', 'fixtures'),
    hardeningFixtures: path.join(root, 'test', 'hardening', 'fixtures'),
    env,
    as: { uid: NOBODY, gid: NOBODY, cwd: '/', execArgv: [] },
  };
}

/** Whether uid 65534 can load the package at `pkg` and read its fixtures; the error output where not. */
function loads(pkg: NobodyPackage): { ok: boolean; why: string } {
  const script =
    'const fs = require("node:fs"); const [dist, ...dirs] = process.argv.slice(1);' +
    'for (const dir of dirs) for (const f of fs.readdirSync(dir)) if (f.endsWith(".cjs")) fs.accessSync(`${dir}/${f}`, fs.constants.R_OK);' +
    'if (!require(dist).isSupported()) { console.error(require(dist).supportInfo().reason); process.exit(3); }';
  const run = spawnSync(process.execPath, ['-e', script, pkg.dist, pkg.fixtures, pkg.hardeningFixtures], { ...pkg.as, env: pkg.env, encoding: 'utf8' });
  return { ok: run.status === 0, why: run.error?.message ?? run.stderr.trim().split('\n').slice(-3).join(' ') };
}

/** The production dependency tree of the package, as directories under ROOT. */
function productionDependencies(): string[] {
  const seen = new Set<string>();
  const visit = (from: string): void => {
    const manifest = JSON.parse(fs.readFileSync(path.join(from, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const name of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
      let dir: string;
      try {
        dir = path.dirname(createRequire(path.join(from, 'package.json')).resolve(`${name}/package.json`));
      } catch {
        continue; // an optional dependency that is not installed
      }
      if (seen.has(dir)) continue;
      seen.add(dir);
      visit(dir);
    }
  };
  visit(ROOT);
  return [...seen];
}

/** Every directory and file under `top` readable (and directories and executables enterable) by anyone. */
function openToAll(top: string): void {
  const stat = fs.statSync(top);
  fs.chmodSync(top, stat.isDirectory() || (stat.mode & 0o100) !== 0 ? 0o755 : 0o644);
  if (stat.isDirectory()) for (const entry of fs.readdirSync(top)) openToAll(path.join(top, entry));
}

/** The built addon's directory that node-gyp-build loads from (NODE_KSM_PREBUILD's under test:asan). */
function addonDirs(env: NodeJS.ProcessEnv): Array<[from: string, to: string]> {
  const dirs: Array<[string, string]> = [[path.join(ROOT, 'build', 'Release'), path.join('build', 'Release')]];
  if (fs.existsSync(path.join(ROOT, 'prebuilds'))) dirs.push([path.join(ROOT, 'prebuilds'), 'prebuilds']);
  if (env.NODE_KSM_PREBUILD) dirs.push([path.join(env.NODE_KSM_PREBUILD, 'build', 'Release'), path.join('prebuild-env', 'build', 'Release')]);
  return dirs.filter(([from]) => fs.existsSync(from));
}

/**
 * The package as uid 65534 can load it: the checkout where it can, else a
 * world-readable copy removed when the test ends. Needs root, and a node
 * binary that uid 65534 may run.
 */
export function packageForNobody(ctx: TestContext, env: NodeJS.ProcessEnv = process.env): NobodyPackage {
  needs(ctx, process.getuid?.() === 0, `root, to start a child as uid ${NOBODY}`);
  const inPlace = layout(ROOT, env);
  const first = loads(inPlace);
  if (first.ok) return inPlace;

  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-nobody-'));
  ctx.onTestFinished(() => fs.rmSync(copy, { recursive: true, force: true }));
  const parts: Array<[string, string]> = [
    [path.join(ROOT, 'package.json'), 'package.json'],
    [path.join(ROOT, 'dist'), 'dist'],
    [path.join(ROOT, 'test', 'fixtures'), path.join('test', 'fixtures')],
    [path.join(ROOT, 'test', 'hardening', 'fixtures'), path.join('test', 'hardening', 'fixtures')],
    ...addonDirs(env),
    ...productionDependencies().map((dir): [string, string] => [dir, path.relative(ROOT, dir)]),
  ];
  for (const [from, to] of parts) fs.cpSync(from, path.join(copy, to), { recursive: true, dereference: true });
  openToAll(copy);
  const copied = layout(copy, env.NODE_KSM_PREBUILD ? { ...env, NODE_KSM_PREBUILD: path.join(copy, 'prebuild-env') } : env);
  const second = loads(copied);
  needs(ctx, second.ok, `a package uid ${NOBODY} can load: the checkout is not readable to it (${first.why}), nor a copy in ${os.tmpdir()} (${second.why})`);
  return copied;
}
