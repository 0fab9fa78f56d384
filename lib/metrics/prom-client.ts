/**
 * Which copy of prom-client to build metrics with. node-ksm depends on
 * prom-client (so `npx node-ksm exporter` works out of the box), and an
 * application has its own: npm shares one copy when the versions agree and
 * nests ours when they do not. Metrics for an application's registry must
 * come from the copy that made it (its `instanceof` checks, its global
 * registry), so we find that copy among the modules loaded in this process
 * and never load a second one for it.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type * as PromClient from 'prom-client';

import { KsmMissingDependencyError } from '../errors.js';

export type Client = typeof PromClient;

let own: Client | undefined;

/** Our own dependency: for the exporter, and where the application has none. */
export function ownPromClient(): Client {
  if (own !== undefined) return own;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    own = require('prom-client') as Client;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new KsmMissingDependencyError('prom-client', 'npm install prom-client', { cause: error });
    }
    throw error;
  }
  return own;
}

function looksLikeClient(value: unknown): value is Client {
  const v = value as Partial<Client> | null;
  return typeof v === 'object' && v !== null && typeof v.Registry === 'function' && typeof v.Gauge === 'function' && typeof v.Counter === 'function';
}

/** Every prom-client copy this process has loaded, by file. */
function loadedCopies(): Map<string, Client> {
  const copies = new Map<string, Client>();
  for (const [file, module] of Object.entries(require.cache)) {
    if (module === undefined || !/[\\/]node_modules[\\/]prom-client[\\/]index\.js$/.test(file)) continue;
    if (looksLikeClient(module.exports)) copies.set(file, module.exports);
  }
  return copies;
}

/** The application's entry point: its node_modules are where its prom-client is. */
function applicationRequire(): NodeJS.Require {
  const entry = require.main?.filename ?? (process.argv[1] !== undefined ? path.resolve(process.argv[1]) : path.join(process.cwd(), 'index.js'));
  return createRequire(entry);
}

/** A registry that prom-client's metric constructors can register in (`registers: [it]`). */
function isRegistryShaped(value: unknown): boolean {
  const v = value as { registerMetric?: unknown; metrics?: unknown; getSingleMetric?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.registerMetric === 'function' && typeof v.metrics === 'function' && typeof v.getSingleMetric === 'function';
}

/**
 * The copy that made `registry`; else, for a registry of a copy we cannot
 * see (a bundle), our own classes, which register through its
 * registerMetric(). Undefined when `registry` is no registry at all.
 */
export function clientOfRegistry(registry: unknown): Client | undefined {
  for (const copy of loadedCopies().values()) {
    if (registry instanceof copy.Registry) return copy;
  }
  return isRegistryShaped(registry) ? ownPromClient() : undefined;
}

/**
 * The application's prom-client, whose global `register` is the default
 * registry: the copy its entry point resolves if loaded or installed, else
 * one it has loaded, else ours.
 */
export function applicationPromClient(): Client {
  let resolved: string | undefined;
  try {
    resolved = applicationRequire().resolve('prom-client');
  } catch {
    resolved = undefined;
  }
  const copies = loadedCopies();
  if (resolved !== undefined) {
    const loaded = copies.get(resolved);
    if (loaded !== undefined) return loaded;
    try {
      // Installed for the application but not loaded yet: it is the copy the application will require.
      const required = applicationRequire()('prom-client') as unknown;
      if (looksLikeClient(required)) return required;
    } catch {
      // fall through
    }
  }
  let ownFile: string | undefined;
  try {
    ownFile = require.resolve('prom-client');
  } catch {
    ownFile = undefined;
  }
  for (const [file, copy] of copies) if (file !== ownFile) return copy;
  return ownPromClient();
}

/**
 * A counter that mirrors one the kernel keeps (full_scans, cow_ksm, ksmd's
 * CPU time): on each collect it is set to the kernel's value; a reading that
 * fails (undefined) keeps the last one.
 */
export function kernelCounter(client: Client, registry: PromClient.Registry, name: string, help: string, read: () => number | undefined): void {
  new client.Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      if (v !== undefined) {
        this.reset();
        this.inc(v);
      }
    },
  });
}
