// The few libtorch APIs that moved between the versions avap builds against (Debian's 1.13 and
// PyTorch 2.x wheels), each behind one function, so the ops themselves read the same everywhere.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#define AVAP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#if AVAP_TORCH_AT_LEAST(2, 9)
#include <ATen/DeviceAccelerator.h>
#endif

namespace avap::compat {

// Autocast state per device type: one function per device in 1.x, one taking the device in 2.4 and later.
inline bool autocastEnabled(c10::DeviceType device) {
#if AVAP_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void setAutocastEnabled(c10::DeviceType device, bool enabled) {
#if AVAP_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
#else
  if (device == c10::DeviceType::CUDA) at::autocast::set_enabled(enabled);
  else at::autocast::set_cpu_enabled(enabled);
#endif
}

inline at::ScalarType autocastDtype(c10::DeviceType device) {
#if AVAP_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void setAutocastDtype(c10::DeviceType device, at::ScalarType dtype) {
#if AVAP_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

// libtorch prints every warning each time it is raised; Python's warnings module shows each once. This
// handler does the same on the thread that installs it (autograd replays backward's warnings there).
// Its hook's signature changed in 2.0 (a Warning object instead of its parts).
class OnceWarningHandler : public c10::WarningHandler {
 public:
#if AVAP_TORCH_AT_LEAST(2, 0)
  void process(const c10::Warning& warning) override {
    if (first(warning.msg())) c10::WarningHandler::process(warning);
  }
#else
  void process(const c10::SourceLocation& where, const std::string& msg, const bool verbatim) override {
    if (first(msg)) c10::WarningHandler::process(where, msg, verbatim);
  }
#endif

 private:
  bool first(const std::string& msg) {
    std::lock_guard<std::mutex> lock(mutex_);
    return seen_.insert(msg).second;
  }
  std::mutex mutex_;
  std::unordered_set<std::string> seen_;
};

inline void setWarningHandler(c10::WarningHandler* handler) {
#if AVAP_TORCH_AT_LEAST(2, 0)
  c10::WarningUtils::set_warning_handler(handler);
#else
  c10::Warning::set_warning_handler(handler);
#endif
}

struct MemoryStats {
  int64_t allocated;
  int64_t peak;
};

// The caching allocator's bytes on a GPU, through the device-generic accelerator API (2.9 and later);
// older libtorch only exposes them through CUDA's own headers, which a CPU build does not have.
inline std::optional<MemoryStats> deviceMemoryStats(c10::DeviceIndex index) {
#if AVAP_TORCH_AT_LEAST(2, 9)
  const auto stats = at::accelerator::getDeviceStats(index);
  const auto& bytes = stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
  return MemoryStats{bytes.current, bytes.peak};
#else
  (void)index;
  return std::nullopt;
#endif
}

inline void resetPeakMemory(c10::DeviceIndex index) {
#if AVAP_TORCH_AT_LEAST(2, 9)
  at::accelerator::resetPeakStats(index);
#else
  (void)index;
#endif
}

}  // namespace avap::compat
