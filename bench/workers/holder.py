# The peer: the same workload as holder.cjs with Python's standard library,
# mmap.mmap + mmap.madvise(MADV_MERGEABLE) (Python 3.8+). Same page pattern,
# same protocol: one JSON line when the data is written, exit on stdin EOF.
import ctypes
import json
import mmap
import os
import struct
import sys
import time

spec = json.loads(sys.argv[1] if len(sys.argv) > 1 else '{}')
size = spec['size']
seed = spec.get('seed', 7) & 0xFF
PAGE = mmap.PAGESIZE

t0 = time.perf_counter()
m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_MERGEABLE)
if spec.get('noHugepage'):
    m.madvise(mmap.MADV_NOHUGEPAGE)
template = bytearray([seed]) * PAGE
for i in range(size // PAGE):
    struct.pack_into('<I', template, 0, i)
    struct.pack_into('<I', template, 2048, i ^ 0x5A5A5A5A)
    m[i * PAGE:(i + 1) * PAGE] = template
fill_ms = (time.perf_counter() - t0) * 1000

# The mapping's address, from a ctypes view of the buffer (no copy).
address = ctypes.addressof(ctypes.c_char.from_buffer(m))
print(json.dumps({
    'pid': os.getpid(),
    'fillMs': fill_ms,
    'start': str(address),
    'end': str(address + (size // PAGE) * PAGE),
}), flush=True)

for line in sys.stdin:
    if line.strip() == 'exit':
        break
