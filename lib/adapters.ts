/**
 * Thin adapters over the SDK modules the CLI and the metrics sit on that
 * are built in parallel (issue 3 profit/regions/format, issue 4 doctor,
 * issue 5 estimate, the demo). Each is loaded when its compiled module is
 * present; until then callers get `undefined` and say what is missing
 * rather than inventing figures. Not exported from the package root.
 */
import * as path from 'node:path';

/** A module of this package (`name.js` or `name/index.js`), or undefined when it is not part of this build. */
function optional<T>(name: string): T | undefined {
  const file = path.join(__dirname, name);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as T;
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${file}'`)) return undefined;
    throw error;
  }
}

/** What `node-ksm` says when a command's module is missing from the build. */
export function missingModule(what: string, issue: number): Error {
  const error = new Error(`${what} is not part of this build of node-ksm yet (issue ${issue})`);
  (error as Error & { code: string }).code = 'ERR_KSM_NOT_BUILT';
  return error;
}

// ---- issue 3: profit / regions ------------------------------------------

/** The figures the CLI and metrics take from profit(), whatever its full shape. */
export interface FairShare {
  pid: number;
  /** Bytes backed by KSM pages (smaps KSM:). */
  mergedBytes: number;
  /** The fair share of the saving: a page mapped k times gives each mapper (k-1)/k. */
  savedBytes: number;
  /** Page-by-page from pagemap/kpageflags/kpagecount, or estimated from Pss. */
  exact: boolean;
  /** Per labelled buffer (allocMergeable/markMergeable labels). */
  labels: Array<{ label: string; mergedBytes: number; savedBytes: number }>;
}

type ProfitModule = {
  profit(pid?: number, options?: { exact?: boolean; root?: string }): unknown;
};

type Obj = Record<string, unknown>;

function num(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

/** Whether profit() (issue 3) is in this build. */
export function hasProfit(): boolean {
  return optional<ProfitModule>('profit') !== undefined;
}

/** Fair-share saving of a process, or undefined when profit() is not in this build. */
export async function fairShare(pid: number, options: { exact?: boolean; root?: string } = {}): Promise<FairShare | undefined> {
  const mod = optional<ProfitModule>('profit');
  if (mod === undefined) return undefined;
  const opts: { exact?: boolean; root?: string } = {};
  if (options.exact !== undefined) opts.exact = options.exact;
  if (options.root !== undefined && options.root !== '/') opts.root = options.root;
  const report = (await mod.profit(pid, opts)) as Obj;
  const total = (report.total ?? report.totals ?? report) as Obj;
  const regions = (Array.isArray(report.regions) ? report.regions : []) as Obj[];
  const labels = new Map<string, { label: string; mergedBytes: number; savedBytes: number }>();
  for (const region of regions) {
    if (typeof region.label !== 'string') continue;
    const entry = labels.get(region.label) ?? { label: region.label, mergedBytes: 0, savedBytes: 0 };
    entry.mergedBytes += num(region.mergedBytes) ?? 0;
    entry.savedBytes += num(region.savedBytes) ?? 0;
    labels.set(region.label, entry);
  }
  return {
    pid,
    mergedBytes: num(total.mergedBytes) ?? 0,
    savedBytes: num(total.savedBytes) ?? 0,
    exact: report.method === 'exact',
    labels: [...labels.values()],
  };
}

type RegionsModule = { regions(pid?: number, options?: { root?: string }): unknown };

/** regions(pid) of issue 3, or undefined when not in this build. */
export async function regionsOf(pid: number, options: { root?: string } = {}): Promise<Obj[] | undefined> {
  const mod = optional<RegionsModule>('regions');
  if (mod === undefined) return undefined;
  const result = (await mod.regions(pid, options.root !== undefined && options.root !== '/' ? { root: options.root } : {})) as unknown;
  if (Array.isArray(result)) return result as Obj[];
  const list = (result as Obj).regions;
  return Array.isArray(list) ? (list as Obj[]) : [];
}

/** profit(pid) of issue 3 as the module returns it, or undefined when not in this build. */
export async function profitReport(pid: number, options: { exact?: boolean; root?: string } = {}): Promise<Obj | undefined> {
  const mod = optional<ProfitModule>('profit');
  if (mod === undefined) return undefined;
  const opts: { exact?: boolean; root?: string } = {};
  if (options.exact !== undefined) opts.exact = options.exact;
  if (options.root !== undefined && options.root !== '/') opts.root = options.root;
  return (await mod.profit(pid, opts)) as Obj;
}
