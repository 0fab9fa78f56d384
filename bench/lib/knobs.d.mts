// Types for test/bench-smoke.test.ts.
export const KSM: string;
export const THP: string;
export function readKnob(name: string): string | undefined;
export function joinKsm(): void;
export function leaveKsm(): void;
export function knobsOverwritten(): number;
export function withKnobs<T>(values: Record<string, string | number>, fn: (before: Record<string, string>) => Promise<T> | T, options?: { alsoRestore?: string[] }): Promise<T>;
export function withThp<T>(mode: string, fn: (before: string) => Promise<T> | T): Promise<T>;
