#include "procfile.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "fd.h"

namespace ksm {

namespace {

class ReadFileWorker : public Napi::AsyncWorker {
 public:
  ReadFileWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    Fd fd;
    if (!fd.Open(path_, &failure_)) return;
    constexpr size_t kChunk = 65536;
    size_t size = 0;
    for (;;) {
      if (data_.size() < size + kChunk) data_.resize(std::max(data_.size() * 2, size + kChunk));
      ssize_t n = read(fd.get(), data_.data() + size, kChunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        failure_ = {errno, "read", path_};
        return;
      }
      if (n == 0) break;
      size += static_cast<size_t>(n);
    }
    data_.resize(size);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failure_.err != 0) {
      deferred_.Reject(SystemError(env, failure_.err, failure_.syscall.c_str(), failure_.path).Value());
      return;
    }
    deferred_.Resolve(Napi::Buffer<char>::Copy(env, data_.data(), data_.size()));
  }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  const std::string path_;
  std::vector<char> data_;
  Failure failure_;
};

}  // namespace

Napi::Value ReadProcFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "readProcFile(path: string)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (path.empty() || path.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, "path must be a non-empty string without NUL bytes");
  }
  auto* worker = new ReadFileWorker(env, std::move(path));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace ksm
