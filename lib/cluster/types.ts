/** The types of node-ksm/cluster. */
import type * as childProcess from 'node:child_process';
import type { Cluster, ClusterSettings, Worker } from 'node:cluster';

import type { MergeableHeapsOptions } from './options.js';

export type { MergeableHeapsOptions } from './options.js';
export type { ServingMode } from './flags.js';

export interface MergeableClusterSettings extends ClusterSettings {
  /** The mode's options; `false` starts plain workers. */
  mergeableHeaps?: MergeableHeapsOptions | false;
}

export interface MergeableForkOptions extends childProcess.ForkOptions {
  mergeableHeaps?: MergeableHeapsOptions | false;
}

export interface MergeableHeapArgs {
  /** Put these before the worker's own execArgv: the preload must run first. */
  execArgv: string[];
  env: Record<string, string>;
}

export interface WorkerStatus {
  /** This process was started in the mode. */
  active: boolean;
  /** Its start-up is over (the serving flags are on). */
  serving: boolean;
  /** Its Math.random() has a state of its own. */
  ownRandom: boolean;
}

export interface MergeableCluster extends Cluster {
  /** cluster.setupPrimary(), plus `mergeableHeaps`. */
  setupPrimary(settings?: MergeableClusterSettings): void;
  /** @deprecated Node's old name of setupPrimary(). */
  setupMaster(settings?: MergeableClusterSettings): void;
  /** cluster.fork(), in the mode unless setupPrimary() turned it off. */
  fork(env?: NodeJS.ProcessEnv): Worker;
  /** child_process.fork() in the mode; `options.mergeableHeaps` as in setupPrimary(). */
  forkChild(modulePath: string, args?: readonly string[], options?: MergeableForkOptions): childProcess.ChildProcess;
  forkChild(modulePath: string, options?: MergeableForkOptions): childProcess.ChildProcess;
  /** The arguments and environment that start a worker in the mode with any launcher (empty where the machine cannot merge). */
  mergeableHeapArgs(options?: MergeableHeapsOptions): MergeableHeapArgs;
  /** In a worker: start-up is over, switch to serving now. True when it switched now. */
  startupComplete(): boolean;
  workerStatus(): WorkerStatus;
}
