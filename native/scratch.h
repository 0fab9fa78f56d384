// Private anonymous memory of the addon's own, mapped and unmapped as one.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace ksm {

// Page copies made while reading live on a mapping of their own, outside the
// ranges being scanned (those were fixed before it existed), and are unmapped
// at the end: copies left in malloc's free lists would show up as phantom
// twins when this process estimates itself again.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { Release(); }

  bool Map(size_t bytes) {
    Release();
    void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return false;
    data_ = static_cast<uint8_t*>(mem);
    size_ = bytes;
    return true;
  }
  void Release() {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace ksm
