// State of the addon per Node.js environment (main thread or worker): the
// one instance-data slot Node-API gives a module, shared by every concern.
#pragma once

#include <napi.h>

#include <memory>

namespace ksm {

class ProcReader;

struct AddonData {
  AddonData();
  ~AddonData();
  std::unique_ptr<ProcReader> procReader;
};

// This environment's data, set once in Init.
AddonData& DataOf(Napi::Env env);

}  // namespace ksm
