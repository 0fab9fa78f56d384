// Types for test/bench-smoke.test.ts.
export const BENCH_ADDON: string;
export function buildBenchAddon(): string;
export function benchAddon(): {
  hashPages(view: ArrayBufferView, hash?: 'auto' | 'scalar'): { pages: number; zeroPages: number; nanoseconds: number; digest: bigint; implementation: string };
  readBandwidth(view: ArrayBufferView, passes: number): { bytes: number; nanoseconds: number; checksum: bigint };
  vmReadBandwidth(view: ArrayBufferView, batchPages: number): { bytes: number; nanoseconds: number };
};
