/**
 * /proc/PID/pagemap, /proc/kpageflags and /proc/kpagecount: what backs each
 * page of a range. Exact attribution of many ranges runs in the addon, off
 * the event loop (native/pagemap.cc); the small synchronous count below
 * serves an unmerge preflight of this process's own buffer.
 */
import { pagemapScanEnabled, type NativeBinding, type PageAttribution } from '../binding.js';
import { isSystemError, withHint, type SystemError } from '../errors.js';
import { withOpenFile } from './files.js';
import type { ProcessTarget } from './target.js';

export const EXACT_HINT =
  'exact attribution reads page frames from /proc/PID/pagemap and /proc/kpageflags: it needs root (CAP_SYS_ADMIN)';

/** EPERM, Node-shaped, for a refusal the kernel made silently (frame numbers shown as 0). */
export function permissionError(message: string, hint: string): SystemError {
  const error = new Error(`EPERM: operation not permitted, ${message}`) as SystemError;
  error.code = 'EPERM';
  error.errno = -1;
  error.syscall = 'pread';
  return withHint(error, hint);
}

/**
 * Exact KSM attribution of page-aligned [starts[i], ends[i]) ranges of a
 * process, page by page, off the event loop.
 *
 * @throws SystemError EPERM/EACCES (with a hint) where this process may not
 *   see page frames (not root): the kernel then shows them as 0.
 */
export async function attributePages(
  native: NativeBinding,
  target: ProcessTarget,
  starts: BigUint64Array,
  ends: BigUint64Array,
): Promise<PageAttribution> {
  let attribution: PageAttribution;
  try {
    attribution = await native.pageAttribution(target.pid, starts, ends, pagemapScanEnabled());
  } catch (error) {
    if (isSystemError(error) && (error.code === 'EACCES' || error.code === 'EPERM') && error.hint === undefined) {
      throw withHint(error, EXACT_HINT);
    }
    throw error;
  }
  if (attribution.pfnHidden) throw permissionError(`/proc/${target.pid}/pagemap shows no page frames`, EXACT_HINT);
  return attribution;
}

// pagemap entry bits and the kpageflags bit (Documentation/admin-guide/mm/pagemap.rst).
const PM_PRESENT = 63n;
const PM_PFN_MASK = (1n << 55n) - 1n;
const KPF_KSM = 21n;

/** Pages in [start, end) of this process backed by a KSM page, from pagemap + kpageflags; undefined without root. */
export function ksmPagesExact(start: bigint, end: bigint, pageSize: number): number | undefined {
  const page = BigInt(pageSize);
  const count = Number((end - start) / page);
  if (count === 0) return 0;
  try {
    return withOpenFile('/proc/self/pagemap', (readPagemap) =>
      withOpenFile('/proc/kpageflags', (readFlags) => {
        const entries = Buffer.alloc(count * 8);
        if (readPagemap(entries, Number((start / page) * 8n)) !== entries.length) return undefined;
        const flags = Buffer.alloc(8);
        let ksm = 0;
        let sawPfn = false;
        for (let i = 0; i < count; i++) {
          const entry = entries.readBigUInt64LE(i * 8);
          if ((entry >> PM_PRESENT) === 0n) continue;
          const pfn = entry & PM_PFN_MASK;
          if (pfn === 0n) continue; // PFNs hidden (no CAP_SYS_ADMIN)
          sawPfn = true;
          if (readFlags(flags, Number(pfn * 8n)) !== 8) return undefined;
          if ((flags.readBigUInt64LE(0) >> KPF_KSM) & 1n) ksm++;
        }
        // Present pages with no PFN at all: we may not see PFNs, so no answer.
        return sawPfn || entries.every((byte) => byte === 0) ? ksm : undefined;
      }),
    );
  } catch {
    return undefined;
  }
}
