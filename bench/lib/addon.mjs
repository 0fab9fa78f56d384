// The bench's own addon (bench/native: the page hash in place and two
// bandwidth baselines). Built here the first time a benchmark needs it, and
// again when its sources change; `npm install` never builds it and the
// package never ships it.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = path.join(ROOT, 'bench', 'native');
export const BENCH_ADDON = path.join(DIR, 'build', 'Release', 'ksm_bench.node');
const SOURCES = [
  'bench/native/binding.gyp',
  'bench/native/bench.cc',
  ...['errors', 'hash', 'view'].flatMap((name) => [`native/${name}.h`, `native/${name}.cc`]),
].map((file) => path.join(ROOT, file));

function stale() {
  if (!fs.existsSync(BENCH_ADDON)) return true;
  const built = fs.statSync(BENCH_ADDON).mtimeMs;
  return SOURCES.some((file) => fs.statSync(file).mtimeMs > built);
}

/** node-gyp: `npm run` puts npm's own on PATH; run directly, the one npm bundles. */
function nodeGyp() {
  try {
    execFileSync('node-gyp', ['--version'], { stdio: 'ignore' });
    return ['node-gyp'];
  } catch {
    const npmRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    return [process.execPath, path.join(npmRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  }
}

/** Builds bench/native when needed; returns the .node file. */
export function buildBenchAddon() {
  if (!stale()) return BENCH_ADDON;
  const env = { ...process.env };
  if (!env.npm_config_nodedir) {
    // Node's headers from the local install, as `npm install` found them.
    try {
      const nodedir = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8' }).trim();
      if (nodedir && nodedir !== 'undefined') env.npm_config_nodedir = nodedir;
    } catch {
      /* node-gyp finds or fetches them itself */
    }
  }
  const [command, ...args] = nodeGyp();
  try {
    // Its output would mix with the benchmark's JSON on stdout: kept, shown on failure.
    execFileSync(command, [...args, 'rebuild', `--directory=${DIR}`], { env, cwd: DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error(`building the bench addon (bench/native) failed:\n${error.stdout ?? ''}\n${error.stderr ?? ''}`);
  }
  return BENCH_ADDON;
}

/** The bench addon: { hashPages, readBandwidth, vmReadBandwidth } (bench/native/bench.cc). */
export function benchAddon() {
  return createRequire(import.meta.url)(buildBenchAddon());
}
