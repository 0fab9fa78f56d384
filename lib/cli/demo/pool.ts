/**
 * The demo's worker processes (worker.ts, forked): started together, asked
 * to verify their tables, and killed on every way out. kill() is
 * synchronous so that it also runs from process.on('exit').
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

import { abortError } from '../../errors.js';

export interface DemoWorker {
  child: ChildProcess;
  pid: number;
  /** The table's mapping: [start, end). */
  start: bigint;
  end: bigint;
}

interface Ready {
  type: 'ready';
  pid: number;
  address: string;
  mapped: number;
}

type WorkerMessage = Ready | { type: 'error'; message: string };

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export class WorkerPool {
  readonly workers: DemoWorker[] = [];
  private readonly children: ChildProcess[] = [];
  private killed = false;
  private fail: (error: Error) => void = () => undefined;
  /** Rejects when a worker exits before kill(): the demo cannot go on without it. */
  readonly lost = new Promise<never>((_resolve, reject) => {
    this.fail = reject;
  });

  constructor() {
    // Only ever raced against; never an unhandled rejection of its own.
    this.lost.catch(() => undefined);
  }

  /** Starts `count` workers that each build the table; resolves once every one has. */
  async start(count: number, size: number, seed: number, signal: AbortSignal): Promise<void> {
    const results = await Promise.allSettled(Array.from({ length: count }, () => this.startOne(size, seed, signal)));
    for (const result of results) if (result.status === 'fulfilled') this.workers.push(result.value);
    if (signal.aborted) throw abortError(signal);
    const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private startOne(size: number, seed: number, signal: AbortSignal): Promise<DemoWorker> {
    // dist/cli/demo/worker.js, next to this file once built.
    const child = fork(path.join(__dirname, 'worker.js'), [String(size), String(seed)], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      // Not the parent's flags (a debugger, --expose-gc): plain node processes.
      execArgv: [],
    });
    this.children.push(child);
    return new Promise<DemoWorker>((resolve, reject) => {
      const onAbort = (): void => {
        child.kill('SIGKILL');
        reject(abortError(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('message', (message: WorkerMessage) => {
        signal.removeEventListener('abort', onAbort);
        if (message.type === 'error') {
          reject(new Error(`worker ${child.pid}: ${message.message}`));
          return;
        }
        const start = BigInt(message.address);
        resolve({ child, pid: message.pid, start, end: start + BigInt(message.mapped) });
        child.once('exit', (code, sig) => {
          if (!this.killed) this.fail(exitedError(message.pid, code, sig));
        });
      });
      child.once('exit', (code, sig) => {
        signal.removeEventListener('abort', onAbort);
        reject(new Error(`a worker exited before its table was built (${sig ?? `exit code ${code}`})`));
      });
      child.once('error', reject);
    });
  }

  /** Every worker reads its table back: true when each still holds exactly its own bytes. */
  async verify(): Promise<boolean> {
    const checks = Promise.all(this.workers.map((worker) => ask<{ intact: boolean }>(worker, { cmd: 'verify' })));
    return (await Promise.race([checks, this.lost])).every((check) => check.intact);
  }

  /** Why a worker is gone (read failed with "no such process"): waits for its exit to say how it ended. */
  async gone(worker: DemoWorker): Promise<Error> {
    const child = worker.child;
    if (running(child)) await new Promise((resolve) => child.once('exit', resolve));
    return exitedError(worker.pid, child.exitCode, child.signalCode);
  }

  /** SIGKILL to every worker still alive. */
  kill(): void {
    this.killed = true;
    for (const child of this.children) if (running(child)) child.kill('SIGKILL');
  }

  /** Resolves once every worker started has exited. */
  exited(): Promise<unknown> {
    return Promise.all(this.children.map((child) => (running(child) ? new Promise((resolve) => child.once('exit', resolve)) : undefined)));
  }
}

function exitedError(pid: number, code: number | null, signal: NodeJS.Signals | null): Error {
  return new Error(`worker ${pid} exited while the demo ran (${signal ?? `exit code ${String(code)}`})`);
}

function ask<T>(worker: DemoWorker, message: Record<string, unknown>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (!running(worker.child)) {
      reject(new Error(`worker ${worker.pid} exited`));
      return;
    }
    worker.child.once('message', (reply: T) => resolve(reply));
    worker.child.send(message, (error) => {
      if (error) reject(error);
    });
  });
}
