// Which devices this libtorch can compute on, and the per-device state PyTorch keeps globally:
// autocast, cuDNN's algorithm choice, the caching allocator's memory figures.
#include "compat.h"
#include "tensor_handle.h"

namespace avap {

static c10::DeviceType autocastDevice(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (isMissing(info, i)) return c10::DeviceType::CPU;
  const std::string name = stringArg(info, i, op);
  if (name == "cpu") return c10::DeviceType::CPU;
  if (name == "cuda") return c10::DeviceType::CUDA;
  throw std::invalid_argument(std::string(op) + ": autocast runs on 'cpu' or 'cuda', not '" + name + "'");
}

// Whether the CUDA backend is part of this build at all (a CPU-only libtorch, or its CUDA libraries
// missing at build time), as distinct from cudaAvailable: built with CUDA and a GPU visible. libc10_cuda
// registers CUDA's device guard when it loads; at::hasCUDA() would also need a GPU from 2.x on.
static Napi::Value cudaBuilt(const Napi::CallbackInfo& info) {
  return guard(info, "cudaBuilt", [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA));
  });
}

// autocastEnter(dtype, device = 'cpu') as torch.autocast(device, dtype): ops on autocast's
// lower-precision list (convolutions, matrix products) run in `dtype`, those on its float32 list
// (losses) in float32, parameters stay float32. Returns the state it replaces, [enabled, dtype], for
// autocastExit(enabled, dtype, device); leaving the outermost region drops the weights cast inside it,
// as PyTorch's context manager does.
static Napi::Value autocastEnter(const Napi::CallbackInfo& info) {
  static const char* OPN = "autocastEnter";
  return guard(info, OPN, [&]() -> Napi::Value {
    const at::ScalarType dtype = parseDType(stringArg(info, 0, OPN), OPN);
    const c10::DeviceType device = autocastDevice(info, 1, OPN);
    if (dtype != at::kBFloat16) throw std::invalid_argument("autocast supports only bfloat16 here, got " + dtypeName(dtype));
    Napi::Array previous = Napi::Array::New(info.Env(), 2);
    previous.Set(0u, Napi::Boolean::New(info.Env(), compat::autocastEnabled(device)));
    previous.Set(1u, Napi::String::New(info.Env(), dtypeName(compat::autocastDtype(device))));
    compat::setAutocastDtype(device, dtype);
    compat::setAutocastEnabled(device, true);
    at::autocast::increment_nesting();
    return previous;
  });
}

static Napi::Value autocastExit(const Napi::CallbackInfo& info) {
  static const char* OPN = "autocastExit";
  return guard(info, OPN, [&]() -> Napi::Value {
    const c10::DeviceType device = autocastDevice(info, 2, OPN);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    compat::setAutocastEnabled(device, boolArg(info, 0, OPN));
    compat::setAutocastDtype(device, parseDType(stringArg(info, 1, OPN), OPN));
    return info.Env().Undefined();
  });
}

// setCudnn(deterministic, benchmark): torch.backends.cudnn.deterministic / .benchmark.
static Napi::Value setCudnn(const Napi::CallbackInfo& info) {
  static const char* OPN = "setCudnn";
  return guard(info, OPN, [&]() -> Napi::Value {
    at::globalContext().setDeterministicCuDNN(boolArg(info, 0, OPN));
    at::globalContext().setBenchmarkCuDNN(boolArg(info, 1, OPN));
    return info.Env().Undefined();
  });
}

// cudaSynchronize(index): waits for the GPU's queued work, so a timer measures it.
static Napi::Value cudaSynchronize(const Napi::CallbackInfo& info) {
  static const char* OPN = "cudaSynchronize";
  return guard(info, OPN, [&]() -> Napi::Value {
    torch::cuda::synchronize(intArg(info, 0, OPN));
    return info.Env().Undefined();
  });
}

// cudaMemory(index) → { allocated, peak } bytes of the caching allocator, or null where this libtorch
// does not expose them; cudaResetPeakMemory(index) starts a new peak.
static Napi::Value cudaMemory(const Napi::CallbackInfo& info) {
  static const char* OPN = "cudaMemory";
  return guard(info, OPN, [&]() -> Napi::Value {
    const auto stats = compat::deviceMemoryStats(static_cast<c10::DeviceIndex>(intArg(info, 0, OPN)));
    if (!stats) return info.Env().Null();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("allocated", Napi::Number::New(info.Env(), static_cast<double>(stats->allocated)));
    out.Set("peak", Napi::Number::New(info.Env(), static_cast<double>(stats->peak)));
    return out;
  });
}

static Napi::Value cudaResetPeakMemory(const Napi::CallbackInfo& info) {
  static const char* OPN = "cudaResetPeakMemory";
  return guard(info, OPN, [&]() -> Napi::Value {
    compat::resetPeakMemory(static_cast<c10::DeviceIndex>(intArg(info, 0, OPN)));
    return info.Env().Undefined();
  });
}

// setData(param, value): param.data = value — a parameter moves to another device (Module.to) while
// every holder of its handle keeps seeing it.
static Napi::Value setData(const Napi::CallbackInfo& info) {
  static const char* OPN = "setData";
  return guard(info, OPN, [&]() -> Napi::Value {
    tensorArg(info, 0, OPN).set_data(tensorArg(info, 1, OPN));
    return info.Env().Undefined();
  });
}

void registerDevice(Napi::Env env, Napi::Object e) {
  // Each distinct warning once (a deterministic-algorithms warning would otherwise repeat every step).
  static compat::OnceWarningHandler onceWarnings;
  compat::setWarningHandler(&onceWarnings);
#define REG(name) e.Set(#name, Napi::Function::New(env, name, #name))
  REG(cudaBuilt); REG(autocastEnter); REG(autocastExit); REG(setCudnn); REG(cudaSynchronize); REG(cudaMemory); REG(cudaResetPeakMemory); REG(setData);
#undef REG
}

}  // namespace avap
