#include "smaps-scan.h"

#include <cstring>
#include <string_view>
#include <unordered_map>

namespace ksm {

namespace {

enum Field : size_t {
#define KSM_SMAPS_FIELD_ENUM(name) k_##name,
  KSM_SMAPS_FIELDS(KSM_SMAPS_FIELD_ENUM)
#undef KSM_SMAPS_FIELD_ENUM
};

// Values in kB from this on are 2^53 bytes or more: lib/kernel/smaps.ts judges them.
constexpr uint64_t kMaxKb = (uint64_t{1} << 53) / 1024;

}  // namespace

class SmapsScanner::Impl {
 public:
  explicit Impl(SmapsScan* out) : out_(out) {}

  // Whole lines (the last may be cut short only in the last piece); the
  // VMA being scanned goes on from the piece before.
  bool Run(const char* data, size_t size) {
    const char* p = data;
    const char* const end = data + size;
    double* vma = current_ == kNone ? nullptr : out_->figures.data() + current_;
    while (p < end) {
      if (*p == '\n') {  // the JS scanner skips empty lines too
        p++;
        continue;
      }
      const bool field = *p >= 'A' && *p <= 'Z';
      // As the JS scanner does: a field line of the kernel's 28 bytes ends
      // at its 28th, whatever it holds before.
      const char* eol = field && end - p > 27 && memcmp(p + 24, " kB\n", 4) == 0
                            ? p + 27
                            : static_cast<const char*>(memchr(p, '\n', static_cast<size_t>(end - p)));
      if (eol == nullptr) return false;  // a last line cut short
      if (field) {
        if (vma == nullptr || eol - p < 5 || !Field(p, eol, vma)) return false;
      } else {
        vma = Header(p, eol);
        if (vma == nullptr) return false;
        current_ = static_cast<size_t>(vma - out_->figures.data());
      }
      p = eol + 1;
    }
    return true;
  }

 private:
  static bool Starts(const char* p, const char* eol, const char* name, size_t length) {
    return static_cast<size_t>(eol - p) >= length && memcmp(p, name, length) == 0;
  }

  // A `Name: value` line: the figures we keep stored, others passed over
  // (as the JS scanner does); false for a kept one out of the kernel's shape.
  bool Field(const char* p, const char* eol, double* vma) {
    size_t field = 0;
    size_t name = 0;
    auto is = [&](const char* text, size_t length, size_t which) {
      if (name != 0 || !Starts(p, eol, text, length)) return;
      name = length;
      field = which;
    };
    switch (*p) {
      case 'S':
        is("Size:", 5, k_size);
        is("Shared_Clean:", 13, k_sharedClean);
        is("Shared_Dirty:", 13, k_sharedDirty);
        is("Swap:", 5, k_swap);
        break;
      case 'R':
        is("Rss:", 4, k_rss);
        break;
      case 'P':
        is("Pss:", 4, k_pss);
        is("Private_Clean:", 14, k_privateClean);
        is("Private_Dirty:", 14, k_privateDirty);
        break;
      case 'A':
        is("Anonymous:", 10, k_anonymous);
        is("AnonHugePages:", 14, k_anonHugePages);
        break;
      case 'K':
        is("KSM:", 4, k_ksm);
        break;
      case 'V':
        is("VmFlags:", 8, k_vmFlags);
        break;
      default:
        break;
    }
    if (name == 0) return true;
    const char* i = p + name;
    if (field == k_vmFlags) {
      vma[k_vmFlags] = Intern(k_vmFlags, i, eol);
      return true;
    }
    // `%-16s%8lu kB`: spaces, digits, " kB" (wider where the value is).
    while (i < eol && *i == ' ') i++;
    const char* digits = i;
    uint64_t value = 0;
    while (i < eol && *i >= '0' && *i <= '9' && i - digits < 16) value = value * 10 + static_cast<uint64_t>(*i++ - '0');
    if (i == digits || value >= kMaxKb || eol - i != 3 || memcmp(i, " kB", 3) != 0) return false;
    vma[field] = static_cast<double>(value * 1024);
    return true;
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }

  // 1 to 16 lower-case hex digits at `*p`.
  static bool HexAt(const char** p, const char* eol, uint64_t* value) {
    const char* i = *p;
    uint64_t v = 0;
    while (i < eol && Hex(*i) >= 0 && i - *p < 17) v = (v << 4) | static_cast<uint64_t>(Hex(*i++));
    if (i == *p || i - *p > 16) return false;
    *p = i;
    *value = v;
    return true;
  }

  static const char* Spaces(const char* i, const char* eol) {
    while (i < eol && *i == ' ') i++;
    return i;
  }

  // `start-end perms offset dev inode   pathname`, the checks of the JS
  // scanner's parseHeader(); a new VMA's figures, or nullptr.
  double* Header(const char* p, const char* eol) {
    uint64_t start = 0;
    uint64_t stop = 0;
    uint64_t offset = 0;
    const char* i = p;
    if (!HexAt(&i, eol, &start) || i == eol || *i != '-') return nullptr;
    i++;
    if (!HexAt(&i, eol, &stop)) return nullptr;
    const char* s = Spaces(i, eol);
    if (s == i) return nullptr;
    const char* perms = s;
    while (s < eol && *s != ' ') s++;
    if (s - perms != 4) return nullptr;
    const char* permsEnd = s;
    i = Spaces(s, eol);
    if (i == s || !HexAt(&i, eol, &offset)) return nullptr;
    s = Spaces(i, eol);
    if (s == i) return nullptr;
    const char* dev = s;
    bool colon = false;
    while (s < eol && *s != ' ') colon |= *s++ == ':';
    if (!colon) return nullptr;
    const char* devEnd = s;
    i = Spaces(s, eol);
    if (i == s) return nullptr;
    const char* inodeStart = i;
    double inode = 0;
    while (i < eol && *i >= '0' && *i <= '9' && i - inodeStart < 15) inode = inode * 10 + (*i++ - '0');
    if (i == inodeStart || (i < eol && *i != ' ')) return nullptr;
    i = Spaces(i, eol);

    out_->addresses.push_back(start);
    out_->addresses.push_back(stop);
    out_->addresses.push_back(offset);
    const size_t at = out_->figures.size();
    out_->figures.resize(at + kSmapsFieldCount, -1);
    double* vma = out_->figures.data() + at;
    vma[k_inode] = inode;
    vma[k_perms] = Intern(k_perms, perms, permsEnd);
    vma[k_dev] = Intern(k_dev, dev, devEnd);
    vma[k_pathname] = Intern(k_pathname, i, eol);
    return vma;
  }

  // The index of [from, to)'s bytes in out_->spans, added the first time.
  // The last two strings of each kind are tried first: neighbouring VMAs
  // mostly repeat them (a library's mappings, alternating flags), and
  // hashing a padded header's tail costs more than the rest of the line.
  double Intern(size_t kind, const char* from, const char* to) {
    std::string_view key(from, static_cast<size_t>(to - from));
    Recent& recent = recent_[kind];
    for (const auto& [text, id] : recent.entries) {
      if (id >= 0 && text == key) return id;
    }
    double id;
    auto found = index_.find(key);
    if (found != index_.end()) {
      id = found->second;
    } else {
      id = static_cast<double>(out_->spans.size() / 2);
      out_->spans.push_back(static_cast<uint32_t>(out_->text.size()));
      out_->text.insert(out_->text.end(), from, to);
      out_->spans.push_back(static_cast<uint32_t>(out_->text.size()));
      index_.emplace(key, id);
    }
    recent.entries[recent.next] = {key, id};
    recent.next ^= 1;
    return id;
  }

  struct Recent {
    std::pair<std::string_view, double> entries[2] = {{{}, -1}, {{}, -1}};
    size_t next = 0;
  };

  static constexpr size_t kNone = SIZE_MAX;
  SmapsScan* out_;
  // The figures of the VMA whose lines are being scanned (an index: they move as more are added).
  size_t current_ = kNone;
  Recent recent_[kSmapsFieldCount];
  // Keys point into the scanned bytes, which outlive the scan.
  std::unordered_map<std::string_view, double> index_;
};

SmapsScanner::SmapsScanner(SmapsScan* out, size_t expectedBytes) : impl_(std::make_unique<Impl>(out)) {
  // The kernel prints about 750 bytes per VMA: room for them all, once.
  const size_t vmas = expectedBytes / 700 + 1;
  out->addresses.reserve(3 * vmas);
  out->figures.reserve(kSmapsFieldCount * vmas);
}

SmapsScanner::~SmapsScanner() = default;

bool SmapsScanner::Scan(const char* data, size_t size) {
  if (failed_) return false;
  // Offsets into `text` are 32-bit.
  bytes_ += size;
  failed_ = bytes_ > UINT32_MAX || !impl_->Run(data, size);
  return !failed_;
}

bool ScanSmaps(const char* data, size_t size, SmapsScan* out) {
  SmapsScanner scanner(out, size);
  return scanner.Scan(data, size);
}

std::string_view ScanText(const SmapsScan& scan, double id) {
  if (!(id >= 0)) return {};
  const size_t at = 2 * static_cast<size_t>(id);
  if (at + 1 >= scan.spans.size()) return {};
  return {scan.text.data() + scan.spans[at], static_cast<size_t>(scan.spans[at + 1] - scan.spans[at])};
}

bool HasVmFlag(std::string_view flags, std::string_view flag) {
  for (size_t i = 0; i < flags.size();) {
    while (i < flags.size() && flags[i] == ' ') i++;
    size_t end = i;
    while (end < flags.size() && flags[end] != ' ') end++;
    if (flags.substr(i, end - i) == flag) return true;
    i = end;
  }
  return false;
}

}  // namespace ksm
