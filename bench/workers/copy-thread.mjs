// A worker thread of bench/estimate.mjs: process_vm_readv copies of a
// buffer of its own, started together with the others (a shared flag), so
// that the copy alone on several cores at once is measured the way the
// estimator's threads copy: several threads reading one process's memory.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const bench = require(workerData.addon);
const buffer = Buffer.allocUnsafe(workerData.bytes);
// Every page written, and differently, so that each is a page of its own.
for (let offset = 0; offset < buffer.length; offset += 4096) buffer.writeUInt32LE(offset, offset);
bench.vmReadBandwidth(buffer, workerData.batchPages);
const flag = new Int32Array(workerData.flag);
parentPort.postMessage({ ready: true });
Atomics.wait(flag, 0, 0);
const v = bench.vmReadBandwidth(buffer, workerData.batchPages);
parentPort.postMessage({ bytes: v.bytes, nanoseconds: v.nanoseconds });
