// Types for test/bench-smoke.test.ts.
export const id: string;
export const title: string;
/** (N-1) x S less 64 B of rmap_item per scanned page: what KSM can save at best. */
export function kernelLimit(n: number, bytes: number): number;
