/** parseSmaps() on this process's real smaps and on text older kernels print; the addon's scan against scan(). */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { bindingState } from '../lib/binding.js';
import { allocMergeable, parseSmaps } from '../lib/index.js';
import { scan, type SmapsSummary } from '../lib/kernel/smaps.js';
import { readMaps, readSmaps } from '../lib/kernel/smaps-reader.js';
import { targetOf } from '../lib/kernel/target.js';
import { startSmapsRead } from '../lib/kernel/files.js';
import { NATIVE_SMAPS_FIELDS, fromNativeScan } from '../lib/kernel/smaps-native.js';
import { regionsOfNativeScan, toRegion } from '../lib/report/regions.js';
import { PAGE, addressOf, requireKsm, unsanitizedEnv } from './helpers/ksm.js';

const FIXTURES = path.join(__dirname, 'fixtures', 'smaps');

// A 6.1 VMA: no `KSM:` line (it came in 6.6), THPeligible and ProtectionKey
// as plain numbers.
const SMAPS_61 = `7f3c5a400000-7f3c5a800000 rw-p 00000000 00:00 0 
Size:               4096 kB
KernelPageSize:        4 kB
MMUPageSize:           4 kB
Rss:                4096 kB
Pss:                1024 kB
Shared_Clean:          0 kB
Shared_Dirty:       4096 kB
Private_Clean:         0 kB
Private_Dirty:         0 kB
Referenced:         4096 kB
Anonymous:          4096 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
THPeligible:    0
ProtectionKey:         0
VmFlags: rd wr mr mw me ac mg 
55d4c8a00000-55d4c8a21000 r--p 00000000 fd:01 1835021                    /usr/bin/node
Size:                132 kB
Rss:                 132 kB
VmFlags: rd mr mw me dw sd 
`;

describe('parseSmaps()', () => {
  it('a 6.1 VMA: every field in bytes, VmFlags split, pathname kept', () => {
    const { vmas, skippedLines } = parseSmaps(SMAPS_61);
    expect(skippedLines).toBe(0);
    expect(vmas).toHaveLength(2);
    const [anon, file] = vmas as [NonNullable<(typeof vmas)[0]>, NonNullable<(typeof vmas)[0]>];
    expect(anon).toMatchObject({ start: 0x7f3c5a400000n, end: 0x7f3c5a800000n, perms: 'rw-p', offset: 0n, dev: '00:00', inode: 0, pathname: '' });
    expect(anon.fields).toMatchObject({ Size: 4 * 1024 * 1024, Pss: 1024 * 1024, Shared_Dirty: 4 * 1024 * 1024, THPeligible: 0 });
    expect(anon.fields.KSM).toBeUndefined();
    expect(anon.vmFlags).toEqual(['rd', 'wr', 'mr', 'mw', 'me', 'ac', 'mg']);
    expect(file).toMatchObject({ dev: 'fd:01', inode: 1835021, pathname: '/usr/bin/node', fields: { Size: 132 * 1024 } });
  });

  it('truncated and foreign lines are counted, never thrown on', () => {
    const text = `Rss: 4 kB\nVmFlags: rd\n${SMAPS_61.slice(0, 200)}\ngarbage line\nSize: 99999999999999999999 kB\n`;
    const { vmas, skippedLines } = parseSmaps(text);
    expect(vmas).toHaveLength(1);
    // Two fields before any header, the cut "Shared_Clea", the garbage,
    // and a size past 2^53.
    expect(skippedLines).toBe(5);
    for (const value of Object.values(vmas[0]!.fields)) expect(Number.isSafeInteger(value)).toBe(true);
  });

  it.each([[undefined], [null], [42]])('%s: TypeError ERR_INVALID_ARG_TYPE', (text) => {
    expect(() => parseSmaps(text as unknown as string)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it('this process: one VMA per header line, and an allocMergeable buffer with `mg` and a KSM field', (ctx) => {
    requireKsm(ctx);
    const buffer = allocMergeable(4 * PAGE);
    buffer.fill(1);
    const text = fs.readFileSync('/proc/self/smaps', 'utf8');
    const { vmas, skippedLines } = parseSmaps(text);
    expect(skippedLines).toBe(0);
    expect(vmas).toHaveLength(text.split('\n').filter((line) => /^[0-9a-f]+-[0-9a-f]+ /.test(line)).length);
    const address = addressOf(buffer);
    const vma = vmas.find((v) => v.start <= address && address < v.end);
    expect(vma?.vmFlags).toContain('mg');
    expect(vma?.fields.KSM).toBeTypeOf('number');
    expect(vma?.fields.Rss).toBeGreaterThanOrEqual(4 * PAGE);
  });
});

// The addon scans smaps on the thread that read it (native/smaps-scan.cc)
// where the bytes have the kernel's layout, and hands back the bytes
// otherwise: either way the VMAs must be those scan() makes of the bytes.
describe('the reader thread\'s scan of smaps', () => {
  const state = bindingState();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-smaps-scan-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  let files = 0;

  async function bothWays(bytes: Buffer): Promise<{ native: boolean }> {
    const file = path.join(tmp, String(files++));
    fs.writeFileSync(file, bytes);
    if (!state.loaded) throw new Error(state.reason);
    const read = await startSmapsRead(file, state.binding.smapsScanFields!).promise;
    // Out of the kernel's layout, the bytes come back exactly as read.
    if (Buffer.isBuffer(read)) expect(read.equals(bytes)).toBe(true);
    const { inOrder, ...got } = Buffer.isBuffer(read) ? scan(read, false) : fromNativeScan(read);
    expect(got).toEqual(scan(bytes, false));
    if (!Buffer.isBuffer(read)) {
      // The addon's VMAs say whether each starts at or past the end of the one before, as the plain walk finds.
      expect(inOrder).toBe(got.vmas.every((vma, i) => i === 0 || vma.start >= got.vmas[i - 1]!.end));
      // regions() builds its rows straight from the columns: the rows toRegion() makes of scan()'s VMAs.
      const unclassified = { kind: 'anonymous', anonName: undefined, evidence: undefined } as const;
      const rows = regionsOfNativeScan(read);
      expect(rows.vmas).toStrictEqual(scan(bytes, false).vmas.map((vma) => toRegion(vma, [], unclassified)));
      // Each row its own VmFlags list, as each VMA has.
      expect(new Set(rows.vmas.map((row) => row.vmFlags)).size).toBe(rows.vmas.length);
    }
    return { native: !Buffer.isBuffer(read) };
  }

  const fixtures = fs.readdirSync(FIXTURES).filter((name) => name.endsWith('.smaps')).map((name) => fs.readFileSync(path.join(FIXTURES, name)));

  it.skipIf(!state.loaded)('the addon scans with the columns lib/kernel/smaps.ts reads', () => {
    expect(state.loaded && state.binding.smapsScanFields).toEqual([...NATIVE_SMAPS_FIELDS]);
  });

  it.skipIf(!state.loaded)('this process and every fixture: the same VMAs as scan(), scanned natively', async () => {
    allocMergeable(4 * PAGE).fill(1);
    expect(await bothWays(fs.readFileSync('/proc/self/smaps'))).toEqual({ native: true });
    for (const bytes of fixtures) expect(await bothWays(bytes)).toEqual({ native: true });
  });

  it.skipIf(!state.loaded)('text out of the kernel\'s layout: the bytes back, and scan() of them', async () => {
    const odd = [
      'Rss: 4 kB\n', // before any header
      `${SMAPS_61}Size:\t\t4 kB\n`, // a tab
      `${SMAPS_61}Rss:                   4 kB`, // no last newline
      `${SMAPS_61}Swap:  99999999999999999999 kB\n`, // past 2^53
      `${SMAPS_61}Rss:       4\n`, // no kB
      `${SMAPS_61}garbage\n`,
      '7f00-7f01 rw-p 0 00:00 12345678901234567890\n', // an inode past 15 digits
    ];
    for (const text of odd) expect(await bothWays(Buffer.from(text, 'latin1'))).toEqual({ native: false });
  });

  // A smaps past 256 KiB is cut into pieces of whole lines as it is read and
  // scanned on a second reader thread meanwhile (native/procread.cc
  // Pipeline): VMAs and repeated strings run across the pieces.
  const many = (): Buffer => {
    const parts = ['linux-6.18.smaps', 'linux-6.1.smaps', 'linux-6.18-shared.smaps'].map((name) => fs.readFileSync(path.join(FIXTURES, name)));
    const out: Buffer[] = [];
    for (let i = 0; out.reduce((sum, part) => sum + part.length, 0) < 1_500_000; i++) {
      out.push(parts[i % parts.length]!);
      // A pathname of its own now and then: strings first seen in a later piece.
      out.push(Buffer.from(`${SMAPS_61.replace(' 0 \n', ` 0                          /lib/piece-${i}.so\n`)}`, 'latin1'));
    }
    return Buffer.concat(out);
  };

  it.skipIf(!state.loaded)('a smaps of many pieces: the same VMAs as scan(), scanned natively', async () => {
    const bytes = many();
    expect(bytes.length).toBeGreaterThan(4 * 256 * 1024);
    expect(bytes.includes('/lib/piece-99.so\n')).toBe(true);
    expect(await bothWays(bytes)).toEqual({ native: true });
  });

  it.skipIf(!state.loaded)('a read that stalls between pieces: scanned once, in order, whoever scans (the helper waits, or leaves the rest to the reader)', async () => {
    const bytes = many();
    const fifo = path.join(tmp, `fifo-${files++}`);
    execFileSync('mkfifo', [fifo]);
    if (!state.loaded) throw new Error(state.reason);
    const reading = startSmapsRead(fifo, state.binding.smapsScanFields!).promise;
    const writer = await fs.promises.open(fifo, 'w');
    try {
      // A pause shorter than the helper waits (100 ms), then one longer: it leaves, the reader scans the rest.
      const cuts = [0, 300_000, 700_000, bytes.length];
      const pauses = [20, 400];
      for (let i = 0; i + 1 < cuts.length; i++) {
        await writer.write(bytes.subarray(cuts[i], cuts[i + 1]));
        if (i < pauses.length) await new Promise((resolve) => setTimeout(resolve, pauses[i]));
      }
    } finally {
      await writer.close();
    }
    const read = await reading;
    expect(Buffer.isBuffer(read)).toBe(false);
    const native = read as Exclude<typeof read, Buffer>;
    const expected = scan(bytes, false);
    const { inOrder, ...made } = fromNativeScan(native);
    expect(made).toEqual(expected);
    expect(inOrder).toBe(expected.vmas.every((vma, i) => i === 0 || vma.start >= expected.vmas[i - 1]!.end));
    // Sharing: the same VMAs, each VmFlags line's list once; copied by default.
    const shared = fromNativeScan(native, false).vmas;
    expect(shared).toEqual(expected.vmas);
    const lists = new Set(shared.map((vma) => vma.vmFlags));
    // One list per distinct line (two lines may differ in spaces only).
    expect(lists.size).toBeGreaterThanOrEqual(new Set(shared.map((vma) => vma.vmFlags.join(' '))).size);
    expect(lists.size).toBeLessThan(shared.length / 10);
    const copied = fromNativeScan(native).vmas;
    expect(new Set(copied.map((vma) => vma.vmFlags)).size).toBe(copied.length);
  });

  it.skipIf(!state.loaded)('a smaps of many pieces with a byte changed or cut anywhere: what scan() makes of it, or the bytes whole', async () => {
    const kernel = many();
    await fc.assert(
      fc.asyncProperty(
        fc.nat(kernel.length - 1),
        fc.constantFrom(...' \n\t:-0123456789abcdefkBSRPVKA_\r\x00\xff'),
        fc.option(fc.nat(kernel.length)),
        async (at, char, cut) => {
          const bytes = Buffer.from(kernel);
          bytes[at] = char.charCodeAt(0);
          await bothWays(cut === null ? bytes : bytes.subarray(0, cut));
        },
      ),
      { numRuns: Number(process.env.NODE_KSM_PROPERTY_RUNS ?? 300) / 10 },
    );
  });

  it.skipIf(!state.loaded)('kernel text with bytes changed or cut: always what scan() makes of it', async () => {
    const kernel = fs.readFileSync(path.join(FIXTURES, 'linux-6.18.smaps'));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(kernel.length - 1), fc.constantFrom(...' \n\t:-0123456789abcdefkBSRPVKA_\r\x00\xff')), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat(kernel.length)),
        async (edits, cut) => {
          const bytes = Buffer.from(kernel);
          for (const [at, char] of edits) bytes[at] = char.charCodeAt(0);
          await bothWays(cut === null ? bytes : bytes.subarray(0, cut));
        },
      ),
      { numRuns: Number(process.env.NODE_KSM_PROPERTY_RUNS ?? 300) },
    );
  });
});

describe('readMaps()', () => {
  it("gives smaps' VMAs without figures or flags: the same header lines, read from maps", async () => {
    // A process that maps nothing while it is read twice.
    const child = spawn('sleep', ['30'], { stdio: 'ignore', env: unsanitizedEnv() });
    try {
      await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
      // Its layout is whole once it sleeps: exec'd (/proc/PID/exe names sleep), libraries mapped, asleep (state S).
      const state = (): string => {
        const stat = fs.readFileSync(`/proc/${child.pid!}/stat`, 'utf8'); // `pid (comm) S ...`
        return stat[stat.lastIndexOf(')') + 2] ?? '';
      };
      const settled = (): boolean => fs.readlinkSync(`/proc/${child.pid!}/exe`).endsWith('/sleep') && state() === 'S';
      for (let i = 0; i < 500 && !settled(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(settled()).toBe(true);
      const target = targetOf('/', child.pid!);
      const [maps, smaps] = [await readMaps(target), await readSmaps(target)];
      const header = (v: SmapsSummary): unknown => ({ start: v.start, end: v.end, perms: v.perms, offset: v.offset, dev: v.dev, inode: v.inode, pathname: v.pathname });
      expect(maps.vmas.length).toBeGreaterThan(5);
      expect(maps.vmas.map(header)).toEqual(smaps.vmas.map(header));
      // What only smaps has: figures and VmFlags (smaps has them for every VMA).
      expect(smaps.vmas.every((v) => v.vmFlags.length > 0 && v.size !== undefined)).toBe(true);
      expect(maps.vmas.every((v) => v.vmFlags.length === 0 && v.size === undefined && v.rss === undefined)).toBe(true);
      expect({ torn: maps.torn, skipped: maps.skippedLines }).toEqual({ torn: false, skipped: 0 });
    } finally {
      child.kill('SIGKILL');
    }
  });
});
