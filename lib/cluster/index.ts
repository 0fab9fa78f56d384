/**
 * node-ksm/cluster: `cluster` (and `child_process.fork`) whose workers'
 * V8 heaps merge. Every worker a primary starts gets the same V8 mmap hints
 * from one seed drawn when the primary starts, a deterministic start-up,
 * merge-any, and its own Math.random(). One line to switch:
 *
 *   const cluster = require('node-ksm/cluster'); // instead of require('node:cluster')
 */
import * as childProcess from 'node:child_process';
import nodeCluster, { type ClusterSettings, type Worker } from 'node:cluster';

import { checkOptions, invalidType } from '../validate.js';
import { resolveOptions, type ResolvedOptions } from './options.js';
import { modeEnv, preparePrimary, withModeArgs } from './primary.js';
import type { MergeableCluster, MergeableClusterSettings, MergeableForkOptions, MergeableHeapArgs, MergeableHeapsOptions } from './types.js';
import { enterServing, workerStatus } from './worker.js';

// The options setupPrimary() resolved, per process (two copies share it).
const kClusterMode = Symbol.for('node-ksm.clusterMode');
const processState = process as unknown as Record<symbol, ResolvedOptions | false | undefined>;

/** Turns the mode on or off for later cluster.fork() calls; false when the machine cannot merge. */
function configure(settings: MergeableClusterSettings): ClusterSettings {
  const { mergeableHeaps, ...rest } = settings;
  const options = resolveOptions(mergeableHeaps, 'settings.mergeableHeaps');
  const active = options !== false && preparePrimary(options) ? options : false;
  processState[kClusterMode] = active;
  if (!active) return rest;
  return { ...rest, execArgv: withModeArgs(rest.execArgv ?? nodeCluster.settings.execArgv ?? process.execArgv) };
}

function setupPrimary(settings?: MergeableClusterSettings): void {
  nodeCluster.setupPrimary(configure(checkOptions<MergeableClusterSettings>(settings, 'settings')));
}

function fork(env?: NodeJS.ProcessEnv): Worker {
  if (env !== undefined && (typeof env !== 'object' || env === null)) throw invalidType('env', 'an object', env);
  if (processState[kClusterMode] === undefined) setupPrimary();
  const active = processState[kClusterMode];
  return nodeCluster.fork(active ? { ...env, ...modeEnv(active) } : env);
}

function forkChild(
  modulePath: string,
  argsOrOptions?: readonly string[] | MergeableForkOptions,
  maybeOptions?: MergeableForkOptions,
): childProcess.ChildProcess {
  const args = Array.isArray(argsOrOptions) ? argsOrOptions : [];
  const given = Array.isArray(argsOrOptions) ? maybeOptions : argsOrOptions;
  const { mergeableHeaps, ...options } = checkOptions<MergeableForkOptions>(given, 'options');
  const resolved = resolveOptions(mergeableHeaps, 'options.mergeableHeaps');
  if (resolved === false || !preparePrimary(resolved)) return childProcess.fork(modulePath, args, options);
  return childProcess.fork(modulePath, args, {
    ...options,
    execArgv: withModeArgs(options.execArgv ?? process.execArgv),
    env: { ...(options.env ?? process.env), ...modeEnv(resolved) },
  });
}

function mergeableHeapArgs(options?: MergeableHeapsOptions): MergeableHeapArgs {
  const resolved = resolveOptions(options, 'options');
  if (resolved === false || !preparePrimary(resolved)) return { execArgv: [], env: {} };
  return { execArgv: withModeArgs([]), env: modeEnv(resolved) };
}

function startupComplete(): boolean {
  return enterServing();
}

const primaryOnly: Record<string, unknown> = { setupPrimary, setupMaster: setupPrimary, fork };
const always: Record<string, unknown> = { forkChild, mergeableHeapArgs, startupComplete, workerStatus };
const bound = new WeakMap<object, unknown>();

/** node:cluster itself, with the mode's setupPrimary/fork in the primary and the extras everywhere. */
const mergeableCluster = new Proxy(nodeCluster, {
  get(target, key, receiver) {
    if (typeof key === 'string') {
      if (Object.hasOwn(always, key)) return always[key];
      if (target.isPrimary && Object.hasOwn(primaryOnly, key)) return primaryOnly[key];
    }
    const value: unknown = Reflect.get(target, key, receiver === mergeableCluster ? target : receiver);
    if (typeof value !== 'function') return value;
    // Methods run on cluster itself, and stay the same function between reads.
    let method = bound.get(value);
    if (method === undefined) {
      method = (value as (...args: unknown[]) => unknown).bind(target);
      bound.set(value, method);
    }
    return method;
  },
}) as unknown as MergeableCluster;

export { forkChild, mergeableHeapArgs, startupComplete, workerStatus };
export type {
  MergeableHeapsOptions,
  ServingMode,
  MergeableClusterSettings,
  MergeableForkOptions,
  MergeableHeapArgs,
  WorkerStatus,
  MergeableCluster,
} from './types.js';
export default mergeableCluster;
