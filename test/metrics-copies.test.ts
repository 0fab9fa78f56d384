/**
 * Two copies of prom-client in one process: an application's own, and the
 * one node-ksm depends on. collectDefaultKsmMetrics() must build its metrics
 * with the application's copy (its registry, its classes) and never load ours.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ksmStatText, makeKsmTree } from './helpers/cli.js';
import { DIST, ROOT } from './helpers/ksm.js';

let app: string;
let root: string;
const OURS = path.join(ROOT, 'node_modules', 'prom-client', 'index.js');

beforeAll(() => {
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-app-'));
  // The application's own prom-client: a copy at another path is another module, as npm nests it.
  for (const dep of ['prom-client', 'tdigest', 'bintrees', '@opentelemetry/api']) {
    fs.cpSync(path.join(ROOT, 'node_modules', dep), path.join(app, 'node_modules', dep), { recursive: true });
  }
  root = makeKsmTree();
  fs.mkdirSync(path.join(root, 'proc', 'self'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc', 'self', 'ksm_stat'), ksmStatText({ rmap: 10, zero: 0, merging: 5, profit: 5 * 4096 - 640, mergeAny: true, mergeable: true }));
});
afterAll(() => {
  fs.rmSync(app, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

function runApp(file: string, source: string): Promise<Record<string, unknown>> {
  fs.writeFileSync(path.join(app, file), source);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [file], { cwd: app }, (error, stdout, stderr) => {
      if (error) return reject(new Error(`${error.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

const checks = `
  const registry = new client.Registry();
  ksm.collectDefaultKsmMetrics({ register: registry, root: ${JSON.stringify('ROOT')} });
  ksm.collectDefaultKsmMetrics({ root: ${JSON.stringify('ROOT')}, prefix: 'global_' });
  const text = await registry.metrics();
  const globalText = await client.register.metrics();
  console.log(JSON.stringify({
    own: /^ksm_pages_sharing 9000$/m.test(text) && /^nodejs_ksm_process_merging_pages 5$/m.test(text),
    classes: registry.getSingleMetric('ksm_run') instanceof client.Gauge,
    global: /^global_ksm_pages_sharing 9000$/m.test(globalText),
    globalClasses: client.register.getSingleMetric('global_ksm_run') instanceof client.Gauge,
    oursLoaded: Object.keys(require.cache).includes(${JSON.stringify(OURS)}),
    appCopy: require.resolve('prom-client'),
  }));
`;

describe('collectDefaultKsmMetrics with the application\'s own prom-client', () => {
  const expected = (): Record<string, unknown> => ({
    own: true,
    classes: true,
    global: true,
    globalClasses: true,
    oursLoaded: false,
    appCopy: path.join(fs.realpathSync(app), 'node_modules', 'prom-client', 'index.js'),
  });

  it('CommonJS app: metrics on its registry and its global register, made by its classes; our copy never loaded', async () => {
    const source = `const client = require('prom-client');\nconst ksm = require(${JSON.stringify(DIST)});\n(async () => {${checks.replaceAll('"ROOT"', JSON.stringify(root))}})();`;
    expect(await runApp('app.cjs', source)).toEqual(expected());
  });

  it('ESM app importing prom-client: the same', async () => {
    const source =
      `import client from 'prom-client';\nimport ksm from ${JSON.stringify(DIST)};\nimport { createRequire } from 'node:module';\n` +
      `const require = createRequire(import.meta.url);\n${checks.replaceAll('"ROOT"', JSON.stringify(root))}`;
    expect(await runApp('app.mjs', source)).toEqual(expected());
  });

  it('an app without prom-client of its own gets ours, on our global register', async () => {
    const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-bare-'));
    try {
      fs.writeFileSync(
        path.join(bare, 'app.cjs'),
        `const ksm = require(${JSON.stringify(DIST)});\nksm.collectDefaultKsmMetrics({ root: ${JSON.stringify(root)} });\n` +
          `const client = require(${JSON.stringify(OURS)});\nclient.register.metrics().then((text) => console.log(JSON.stringify({ ok: /^ksm_pages_sharing 9000$/m.test(text) })));`,
      );
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ['app.cjs'], { cwd: bare }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout))),
      );
      expect(JSON.parse(out)).toEqual({ ok: true });
    } finally {
      fs.rmSync(bare, { recursive: true, force: true });
    }
  });
});
