// A primary of the v8-heap suite: starts N sibling workers one way or another
// and relays the bench's commands to them over IPC.
//   argv[2]: JSON {
//     kind: 'code' (heap-code.cjs, child processes) | 'http' (heap-http.cjs, cluster),
//     n, work ('transpile' | 'typecheck', code only),
//     mode: 'nothing' | 'plain' (enableMerge() in each worker)
//         | 'flags' (enableMerge() and the raw V8 `flags`) | 'mergeable-heaps' (node-ksm/cluster),
//     flags?: string[], heaps?: MergeableHeapsOptions }
// One process per group: a mergeable-heaps group gets a seed of its own.
'use strict';
const childProcess = require('node:child_process');
const path = require('node:path');

const spec = JSON.parse(process.argv[2]);
const mergeable = spec.mode === 'mergeable-heaps';
const ksmCluster = mergeable ? require('node-ksm/cluster') : undefined;
const env = {
  ...process.env,
  BENCH_HEAP: JSON.stringify({ work: spec.work, mode: spec.mode, enableMerge: spec.mode === 'plain' || spec.mode === 'flags' }),
};
const execArgv = spec.mode === 'flags' ? spec.flags : [];

/** Each worker as { pid, send(message) -> Promise<reply with the same cmd> }. */
function wrap(channel, pid) {
  const waiting = new Map();
  let ready;
  const readyPromise = new Promise((resolve) => (ready = resolve));
  channel.on('message', (message) => {
    if (message?.cmd === 'ready') return ready(message);
    const resolve = waiting.get(message?.cmd);
    waiting.delete(message?.cmd);
    resolve?.(message);
  });
  return {
    pid,
    ready: readyPromise,
    send(message) {
      return new Promise((resolve) => {
        waiting.set(message.cmd, resolve);
        channel.send(message);
      });
    },
    kill: () => channel.kill('SIGKILL'),
  };
}

function startCode() {
  const file = path.join(__dirname, 'heap-code.cjs');
  return Array.from({ length: spec.n }, () => {
    const child = mergeable
      ? ksmCluster.forkChild(file, [], { env, mergeableHeaps: spec.heaps ?? {} })
      : childProcess.fork(file, [], { env, execArgv });
    return wrap(child, child.pid);
  });
}

function startHttp() {
  const cluster = mergeable ? ksmCluster : require('node:cluster');
  const settings = { exec: path.join(__dirname, 'heap-http.cjs'), execArgv };
  cluster.setupPrimary(mergeable ? { ...settings, mergeableHeaps: spec.heaps ?? {} } : settings);
  return Array.from({ length: spec.n }, () => {
    const worker = cluster.fork({ BENCH_HEAP: env.BENCH_HEAP });
    return wrap({ on: (e, f) => worker.on(e, f), send: (m) => worker.send(m), kill: (s) => worker.process.kill(s) }, worker.process.pid);
  });
}

const workers = spec.kind === 'http' ? startHttp() : startCode();
const all = (message) => Promise.all(workers.map((w) => w.send(message)));

process.on('message', async (message) => {
  if (message.cmd === 'exit') {
    for (const w of workers) w.kill();
    process.exit(0);
  }
  process.send({ cmd: message.cmd, workers: await all(message) });
});
process.on('disconnect', () => {
  for (const w of workers) w.kill();
  process.exit(0);
});
Promise.all(workers.map((w) => w.ready)).then((ready) => {
  process.send({ cmd: 'ready', primary: process.pid, port: ready[0]?.port, workers: ready });
});
