/** `status --by` and `top --by`: the merging processes summed per cgroup, unit, pod or container. */
import { GROUP_BY, type GroupBy, type GroupProfit } from '../report/groups.js';
import type { GroupJson, StatusJson } from './json.js';
import { formatBytes, formatCount, printable, table, UsageError, type Colors } from './output.js';

/** --by's value, checked. */
export function parseBy(value: string | undefined): GroupBy | undefined {
  if (value === undefined) return undefined;
  if (!(GROUP_BY as readonly string[]).includes(value)) throw new UsageError(`--by: '${value}' is not one of ${GROUP_BY.join(', ')}`);
  return value as GroupBy;
}

export function groupJson(g: GroupProfit, withShare: boolean): GroupJson {
  const saved = withShare ? g.savedBytes : null;
  const current = g.memory?.currentBytes;
  return {
    kind: g.kind,
    key: g.key,
    cgroup: g.cgroup,
    cgroups: g.cgroups,
    unit: g.unit ?? null,
    slice: g.slice ?? null,
    podUid: g.podUid ?? null,
    qosClass: g.qosClass ?? null,
    containerId: g.containerId ?? null,
    runtime: g.runtime ?? null,
    pids: g.pids,
    mergingPages: g.mergingPages,
    mergedBytes: withShare ? g.mergedBytes : null,
    savedBytes: saved,
    zeroPageBytes: g.zeroPageBytes,
    metadataBytes: g.metadataBytes,
    netBytes: withShare ? g.netBytes : null,
    memory:
      g.memory === undefined
        ? null
        : { currentBytes: g.memory.currentBytes, anonBytes: g.memory.anonBytes ?? null, maxBytes: g.memory.maxBytes ?? null, source: g.memory.source },
    savedShare: saved === null || current === undefined || current + saved === 0 ? null : saved / (current + saved),
  };
}

const KIND_HEADER: Record<GroupBy, string> = { cgroup: 'CGROUP', unit: 'UNIT', pod: 'POD UID', container: 'CONTAINER' };

/** The group table, as a person reads it; names from the filesystem are escaped. */
export function renderGroups(s: StatusJson, c: Colors): string[] {
  if (s.groups === null || s.by === null) return [];
  const lines = ['', `${c.bold(`saving by ${s.by}`)} ${c.dim('(fair shares summed over the merging processes of each group; others by cgroup path)')}`];
  if (s.groups.length === 0) return [...lines, c.dim('no process has merged pages')];
  const name = (g: GroupJson): string => {
    const key = g.kind === 'container' && g.runtime !== null ? `${g.runtime}://${g.key.slice(0, 12)}` : g.key;
    return printable(g.kind === s.by ? key : `${key} (cgroup)`);
  };
  lines.push(
    table(
      [KIND_HEADER[s.by], 'PROCS', 'SAVED', 'MERGED', 'METADATA', 'MEMORY', 'SAVED OF ALL*'],
      s.groups.map((g) => [
        name(g),
        String(g.pids.length),
        c.green(formatBytes(g.savedBytes)),
        formatBytes(g.mergedBytes),
        formatBytes(g.metadataBytes),
        formatBytes(g.memory?.currentBytes),
        g.savedShare === null ? '-' : `${(g.savedShare * 100).toFixed(1)}%`,
      ]),
      ['left', 'right', 'right', 'right', 'right', 'right', 'right'],
    ),
  );
  const total = s.groups.reduce((sum, g) => sum + (g.savedBytes ?? 0), 0);
  lines.push(`${c.dim('saved, summed over the groups:')} ${formatBytes(total)}${s.pageSize === null || s.pages.sharing === null ? '' : c.dim(` (pages_sharing x page size: ${formatBytes(s.pages.sharing * s.pageSize)}; ${formatCount(s.pages.sharing)} pages)`)}`);
  lines.push(c.dim('* saved / (memory.current + saved): the share of what the group would use unmerged'));
  return lines;
}
