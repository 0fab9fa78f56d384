/**
 * A demo worker (forked by pool.ts): builds the table in an
 * allocMergeable() Buffer, reports where it lives, and holds it until the
 * parent says otherwise or goes away.
 *
 * argv: size in bytes, seed (unsigned 32-bit).
 */
import { binding } from '../../binding.js';
import { allocMergeable } from '../../merge/buffers.js';

/**
 * The table: murmur3's 32-bit finalizer of every index, salted with the
 * seed, as a service might precompute a lookup table at start-up. Every page
 * differs from every other page of the table (so a worker's pages do not
 * merge among themselves) and equals the same page in every other worker.
 */
export function fillTable(buffer: Buffer, seed: number): void {
  const words = Math.floor(buffer.length / 4);
  const view = new Uint32Array(buffer.buffer, buffer.byteOffset, words);
  for (let i = 0; i < words; i++) {
    let h = Math.imul((i + seed) | 0, 0x9e3779b1);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    view[i] = h;
  }
  for (let i = words * 4; i < buffer.length; i++) buffer[i] = (seed + i) & 0xff;
}

function main(): void {
  // Ctrl-C reaches the whole job: the parent stops the workers itself, once
  // it has stopped reading them (a worker gone first would be an error).
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(name, () => undefined);
  const size = Number(process.argv[2]);
  const seed = Number(process.argv[3]) >>> 0;
  const send = (message: unknown): void => {
    process.send?.(message);
  };
  try {
    const startedAt = performance.now();
    const table = allocMergeable(size, { label: 'demo table' });
    fillTable(table, seed);
    const buildMs = performance.now() - startedAt;
    const native = binding();
    const page = native.pageSize();
    const { address } = native.viewRange(table);
    process.on('message', (message: { cmd?: string }) => {
      if (message.cmd === 'verify') {
        const expected = Buffer.allocUnsafe(table.length);
        fillTable(expected, seed);
        send({ intact: expected.equals(table) });
      }
    });
    // The parent died or let go: nothing to hold the table for.
    process.on('disconnect', () => process.exit(0));
    send({
      type: 'ready',
      pid: process.pid,
      address: `0x${address.toString(16)}`,
      mapped: Math.ceil(size / page) * page,
      buildMs,
    });
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    process.disconnect?.();
    process.exitCode = 1;
  }
}

if (require.main === module) main();
