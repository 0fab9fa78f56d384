// Reading whole /proc files on threads of our own, so that no process can
// hold up anyone else's reads: another process's smaps, ksm_stat or pagemap
// waits for that process's mmap lock, which it may hold for seconds.
#pragma once

#include <napi.h>

namespace ksm {

// readProcFile(path, scan, deliver) -> id: the whole file, read on a thread
// of its own (not the libuv pool, whose four threads a few stuck reads would
// take from every fs call of the process), in one go: /proc/PID/smaps is a
// seq_file that returns about a page per read(2), 2,000 reads for a
// 10,000-VMA process. The result comes back on the JS thread as
// deliver(id, error, result) (the function of the environment's first call);
// until then the read keeps the event loop alive, unless abandonRead(id).
// No promise or other N-API handle is made per read, so a read still in the
// kernel when the environment is torn down leaves nothing behind.
// With scan 'smaps', the reader thread also scans what it read
// (smaps-scan.h): the result is then { addresses, figures, text, spans }
// where the bytes had the kernel's layout, and the bytes (a Buffer) where
// they did not. With chunks ('candidates' | 'reported') and chunkLimit, the
// scan also holds the first chunk headers of those VMAs (header-read.h);
// with attribute ('scan' | 'linear': PAGEMAP_SCAN tried, or pagemap read
// whole), attribution.h's ScanAttribution of the VMAs with KSM pages, both
// read while the rest of smaps is.
Napi::Value ReadProcFile(const Napi::CallbackInfo& info);

// readPresentHeaders(dir, addresses, deliver) -> id: header-read.h's
// ReadPresentHeaders on a reader thread, delivered like readProcFile (the
// same function): a Buffer of 16 bytes per address, zeros where the page was
// not present or the read failed; the error of opening dir/pagemap or
// dir/mem otherwise.
Napi::Value ReadPresentHeadersAsync(const Napi::CallbackInfo& info);

// smapsScanFields: the names of `figures`' columns, in their order.
Napi::Value SmapsScanFields(Napi::Env env);

// abandonRead(id): the caller stopped waiting (its deadline passed). The read
// goes on until the kernel returns it, and is still delivered; it no longer
// keeps the event loop alive.
Napi::Value AbandonRead(const Napi::CallbackInfo& info);

}  // namespace ksm
