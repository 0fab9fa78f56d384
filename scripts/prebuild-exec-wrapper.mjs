// Copies the exec wrapper (ksm-unmerged-exec, built next to ksm.node by
// node-gyp) into prebuilds/<platform>-<arch>/, next to the prebuilt addon,
// where spawnUnmerged() looks for it. Run after prebuildify, on the machine
// (or in the container) that built that platform's prebuild:
//   prebuildify --napi --strip && node scripts/prebuild-exec-wrapper.mjs
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (platform() !== 'linux') {
  console.log('prebuild-exec-wrapper: nothing to do outside Linux');
  process.exit(0);
}
const source = join(root, 'build', 'Release', 'ksm-unmerged-exec');
if (!existsSync(source)) {
  console.error(`prebuild-exec-wrapper: ${source} is missing: build first (prebuildify or npm run build:native)`);
  process.exit(1);
}
const target = join(root, 'prebuilds', `${platform()}-${process.env.npm_config_arch ?? arch()}`, 'ksm-unmerged-exec');
mkdirSync(dirname(target), { recursive: true });
copyFileSync(source, target);
chmodSync(target, 0o755);
console.log(`prebuild-exec-wrapper: ${target}`);
