# A holder of candidate memory with a known duplicate layout, for
# bench/estimate-synthetic.mjs: one private anonymous mapping of `size` bytes
# (never MADV_MERGEABLE: ksmd must leave it alone; the estimate is a dry run),
# every page written: the first `shared` pages hold the same content in every
# holder (page i: its index, repeated), then `zero` pages of zeros, then
# random pages. One JSON line when written; exits on stdin EOF (so a parent
# that dies, by any signal, takes its holders with it).
import ctypes
import json
import mmap
import os
import sys
import time

spec = json.loads(sys.argv[1])
PAGE = mmap.PAGESIZE
pages = spec['size'] // PAGE
shared = spec['shared']
zero = spec['zero']

# The kernel kills this holder too when the bench dies (PR_SET_PDEATHSIG = 1, SIGKILL = 9).
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
except Exception:
    pass

t0 = time.perf_counter()
m = mmap.mmap(-1, pages * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
# Small pages only: what KSM would see page by page.
m.madvise(mmap.MADV_NOHUGEPAGE)
for i in range(shared):
    m[i * PAGE:(i + 1) * PAGE] = (i + (spec['seed'] << 32)).to_bytes(8, 'little') * (PAGE // 8)
m[shared * PAGE:(shared + zero) * PAGE] = bytes(zero * PAGE)
offset = (shared + zero) * PAGE
chunk = 16 << 20
while offset < pages * PAGE:
    n = min(chunk, pages * PAGE - offset)
    m[offset:offset + n] = os.urandom(n)
    offset += n
fill_ms = (time.perf_counter() - t0) * 1000

address = ctypes.addressof(ctypes.c_char.from_buffer(m))
print(json.dumps({'pid': os.getpid(), 'fillMs': fill_ms, 'start': str(address), 'end': str(address + pages * PAGE)}), flush=True)

for line in sys.stdin:
    if line.strip() == 'exit':
        break
