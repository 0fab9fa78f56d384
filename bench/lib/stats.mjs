// Medians and formatting.
export function median(values) {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const MiB = 1024 * 1024;

export function fmt(value, digits = 2) {
  if (value === undefined || value === null || Number.isNaN(value)) return 'n/a';
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && abs < 10 ** -digits) return value.toExponential(1);
  return value.toFixed(digits);
}

export const pct = (value, digits = 1) => (value === undefined ? 'n/a' : `${(value * 100).toFixed(digits)}%`);
export const mib = (bytes, digits = 1) => (bytes === undefined ? 'n/a' : `${(bytes / MiB).toFixed(digits)} MiB`);
export const secs = (ms, digits = 2) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(digits)} s`);
export const ratio = (value, digits = 2) => (value === undefined ? 'n/a' : `${value.toFixed(digits)}x`);

/**
 * Runs `fn` `repeats` times, returning the list of results. A run voided by
 * someone else stopping KSM (KsmStoppedError) is run again, twice at most,
 * once KSM runs again.
 */
export async function repeat(repeats, fn) {
  const out = [];
  for (let i = 0; i < repeats; i++) out.push(await retryStopped(() => fn(i)));
  return out;
}

export async function retryStopped(fn, tries = 3) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (error?.name !== 'KsmStoppedError' || attempt >= tries) throw error;
      console.error(`bench: ${error.message}; waiting for run=1 and measuring again`);
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && (await import('node:fs')).readFileSync('/sys/kernel/mm/ksm/run', 'utf8').trim() !== '1') {
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }
}

/** "n runs, a..b s": the spread behind a median of times in ms. */
export function spread(values, unit = (ms) => `${(ms / 1000).toFixed(2)} s`) {
  const list = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (list.length === 0) return 'no runs';
  if (list.length === 1) return '1 run';
  return `${list.length} runs, ${unit(Math.min(...list))} .. ${unit(Math.max(...list))}`;
}
