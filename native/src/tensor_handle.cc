#include "tensor_handle.h"

#include <atomic>
#include <sstream>

namespace avap {

Napi::FunctionReference TensorHandle::constructor;
static std::atomic<int64_t> liveHandles{0};
static std::atomic<int64_t> liveBytes{0};

Napi::Function TensorHandle::Define(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "NativeTensor", {});
  // Set on the prototype after the fact: class templates only take primitives and templates as values.
  Napi::Object proto = fn.Get("prototype").As<Napi::Object>();
  auto method = [&](const char* name, Napi::Function::Callback cb) { proto.Set(name, Napi::Function::New(env, cb, name)); };
  method("shape", &TensorHandle::Shape);
  method("dtype", &TensorHandle::DType);
  method("device", &TensorHandle::Device);
  method("numel", &TensorHandle::Numel);
  method("bytes", &TensorHandle::Bytes);
  method("data", &TensorHandle::Data);
  method("item", &TensorHandle::Item);
  method("requiresGrad", &TensorHandle::RequiresGrad);
  method("setRequiresGrad", &TensorHandle::SetRequiresGrad);
  method("grad", &TensorHandle::Grad);
  method("clearGrad", &TensorHandle::ClearGrad);
  method("backward", &TensorHandle::Backward);
  method("dispose", &TensorHandle::Dispose);
  method("isDisposed", &TensorHandle::IsDisposed);
  constructor = Napi::Persistent(fn);
  constructor.SuppressDestruct();
  return fn;
}

// Memory a handle keeps alive: its storage, unless it is a view of another tensor's storage
// (reporting views too would count the same bytes many times, e.g. for expand()).
static int64_t ownedBytes(const at::Tensor& t) {
  if (!t.defined() || t.is_view() || !t.has_storage()) return 0;
  return static_cast<int64_t>(t.storage().nbytes());
}

Napi::Object TensorHandle::Wrap(Napi::Env env, at::Tensor tensor) {
  Napi::Object obj = constructor.New({});
  TensorHandle* h = Napi::ObjectWrap<TensorHandle>::Unwrap(obj);
  h->tensor = std::move(tensor);
  h->reportedBytes = ownedBytes(h->tensor);
  liveBytes += h->reportedBytes;
  ++liveHandles;
  if (h->reportedBytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, h->reportedBytes);
  return obj;
}

bool TensorHandle::IsHandle(const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().InstanceOf(constructor.Value());
}

TensorHandle* TensorHandle::Of(const Napi::Value& v) {
  if (!IsHandle(v)) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(v.Env(), v, &p) != napi_ok) return nullptr;  // disposed: the wrap is gone
  return static_cast<TensorHandle*>(p);
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {}

TensorHandle::~TensorHandle() {
  if (tensor.defined()) {
    liveBytes -= reportedBytes;
    --liveHandles;
  }
}

void TensorHandle::Release(Napi::Env env) {
  if (!tensor.defined()) return;
  if (reportedBytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, -reportedBytes);
  liveBytes -= reportedBytes;
  --liveHandles;
  reportedBytes = 0;
  tensor = at::Tensor();
}

void TensorHandle::Finalize(Napi::Env env) { Release(env); }

at::Tensor& TensorHandle::From(const Napi::Value& v, const char* op, size_t argIndex) {
  if (!IsHandle(v)) {
    throw Napi::TypeError::New(v.Env(), std::string(op) + ": argument " + std::to_string(argIndex) + " must be a tensor");
  }
  TensorHandle* h = Of(v);
  if (h == nullptr || !h->tensor.defined()) {
    throw Napi::Error::New(v.Env(), std::string(op) + ": argument " + std::to_string(argIndex) + " is a disposed tensor");
  }
  return h->tensor;
}

// ---------------------------------------------------------------- instance methods

static at::Tensor& self(const Napi::CallbackInfo& info, const char* what) {
  TensorHandle* h = TensorHandle::Of(info.This());
  if (h == nullptr || !h->tensor.defined()) throw Napi::Error::New(info.Env(), std::string(what) + ": tensor is disposed");
  return h->tensor;
}

Napi::Value TensorHandle::Shape(const Napi::CallbackInfo& info) {
  auto& t = self(info, "shape");
  Napi::Array out = Napi::Array::New(info.Env(), t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) out.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(t.size(i))));
  return out;
}

Napi::Value TensorHandle::DType(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), dtypeName(self(info, "dtype").scalar_type()));
}

Napi::Value TensorHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), self(info, "device").device().str());
}

Napi::Value TensorHandle::Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(self(info, "numel").numel()));
}

Napi::Value TensorHandle::Bytes(const Napi::CallbackInfo& info) {
  TensorHandle* h = Of(info.This());
  return Napi::Number::New(info.Env(), h == nullptr ? 0.0 : static_cast<double>(h->reportedBytes));
}

Napi::Value TensorHandle::Data(const Napi::CallbackInfo& info) {
  return guard(info, "data", [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    at::Tensor t = self(info, "data").detach().to(at::kCPU).contiguous();
    if (t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);  // JS has no bfloat16 array
    const size_t n = static_cast<size_t>(t.numel());
    const size_t bytes = n * t.element_size();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
    if (bytes > 0) std::memcpy(buf.Data(), t.data_ptr(), bytes);
    switch (t.scalar_type()) {
      case at::kFloat: return Napi::TypedArrayOf<float>::New(env, n, buf, 0, napi_float32_array);
      case at::kDouble: return Napi::TypedArrayOf<double>::New(env, n, buf, 0, napi_float64_array);
      case at::kLong: return Napi::TypedArrayOf<int64_t>::New(env, n, buf, 0, napi_bigint64_array);
      case at::kInt: return Napi::TypedArrayOf<int32_t>::New(env, n, buf, 0, napi_int32_array);
      case at::kByte: case at::kBool: return Napi::TypedArrayOf<uint8_t>::New(env, n, buf, 0, napi_uint8_array);
      default: throw std::runtime_error("unsupported dtype " + dtypeName(t.scalar_type()));
    }
  });
}

Napi::Value TensorHandle::Item(const Napi::CallbackInfo& info) {
  return guard(info, "item", [&]() -> Napi::Value {
    auto& t = self(info, "item");
    if (t.numel() != 1) throw std::runtime_error("only a one-element tensor has an item, this one has " + std::to_string(t.numel()));
    return Napi::Number::New(info.Env(), t.item<double>());
  });
}

Napi::Value TensorHandle::RequiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), self(info, "requiresGrad").requires_grad());
}

Napi::Value TensorHandle::SetRequiresGrad(const Napi::CallbackInfo& info) {
  return guard(info, "requiresGrad_", [&]() -> Napi::Value {
    self(info, "requiresGrad_").requires_grad_(boolArg(info, 0, "requiresGrad_"));
    return info.Env().Undefined();
  });
}

Napi::Value TensorHandle::Grad(const Napi::CallbackInfo& info) {
  auto& t = self(info, "grad");
  const at::Tensor& g = t.grad();
  if (!g.defined()) return info.Env().Null();
  return Wrap(info.Env(), g);
}

Napi::Value TensorHandle::ClearGrad(const Napi::CallbackInfo& info) {
  self(info, "clearGrad").mutable_grad().reset();
  return info.Env().Undefined();
}

Napi::Value TensorHandle::Backward(const Napi::CallbackInfo& info) {
  return guard(info, "backward", [&]() -> Napi::Value {
    auto& t = self(info, "backward");
    c10::optional<at::Tensor> g = optTensorArg(info, 0, "backward");
    bool retain = isMissing(info, 1) ? false : boolArg(info, 1, "backward");
    t.backward(g.has_value() ? *g : at::Tensor(), retain, false);
    return info.Env().Undefined();
  });
}

// Frees the tensor and the handle's native side now, not when V8 gets round to finalizing the JS object:
// N-API defers finalizers to the event loop, so in a synchronous loop (a training epoch inside tidy())
// every disposed handle's wrap would stay allocated between the freed tensors, fragmenting the heap and
// growing RSS step after step. Removing the wrap frees it at once; the JS object is left an empty shell.
Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  TensorHandle* h = Of(info.This());
  if (h == nullptr) return info.Env().Undefined();  // disposed already
  h->Release(info.Env());
  if (napi_remove_wrap(info.Env(), info.This(), nullptr) == napi_ok) delete h;  // ~ObjectWrap deletes the wrap's reference
  return info.Env().Undefined();
}

Napi::Value TensorHandle::IsDisposed(const Napi::CallbackInfo& info) {
  TensorHandle* h = Of(info.This());
  return Napi::Boolean::New(info.Env(), h == nullptr || !h->tensor.defined());
}

// ---------------------------------------------------------------- argument helpers

static std::string argName(const char* op, size_t i) { return std::string(op) + ": argument " + std::to_string(i); }

bool isMissing(const Napi::CallbackInfo& info, size_t i) { return i >= info.Length() || info[i].IsUndefined() || info[i].IsNull(); }

at::Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " is missing");
  return TensorHandle::From(info[i], op, i);
}

c10::optional<at::Tensor> optTensorArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (isMissing(info, i)) return c10::nullopt;
  return TensorHandle::From(info[i], op, i);
}

std::vector<at::Tensor> tensorListArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsArray()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be an array of tensors");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) out.push_back(TensorHandle::From(arr.Get(k), op, i));
  return out;
}

std::vector<int64_t> intsArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsArray()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be an array of integers");
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be an array of integers");
    out[k] = v.As<Napi::Number>().Int64Value();
  }
  return out;
}

int64_t intArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be an integer");
  return info[i].As<Napi::Number>().Int64Value();
}

double doubleArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), argName(op, i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

at::ScalarType parseDType(const std::string& name, const char* op) {
  if (name == "float32") return at::kFloat;
  if (name == "float64") return at::kDouble;
  if (name == "int64") return at::kLong;
  if (name == "int32") return at::kInt;
  if (name == "uint8") return at::kByte;
  if (name == "bool") return at::kBool;
  if (name == "bfloat16") return at::kBFloat16;
  throw std::invalid_argument(std::string("unknown dtype '") + name + "' (float32, float64, int64, int32, uint8, bool, bfloat16)");
}

std::string dtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kBFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

at::Device parseDevice(const std::string& name, const char* op) {
  at::Device d(name);
  if (d.is_cuda() && !torch::cuda::is_available()) {
    throw std::invalid_argument("device '" + name + "' requested but this libtorch has no CUDA device available");
  }
  return d;
}

at::TensorOptions optionsArg(const Napi::CallbackInfo& info, size_t dtypeIndex, size_t deviceIndex, const char* op) {
  at::TensorOptions o;
  o = o.dtype(isMissing(info, dtypeIndex) ? at::kFloat : parseDType(stringArg(info, dtypeIndex, op), op));
  if (!isMissing(info, deviceIndex)) o = o.device(parseDevice(stringArg(info, deviceIndex, op), op));
  return o;
}

static std::string shapeOf(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << "[";
  for (int64_t i = 0; i < t.dim(); ++i) s << (i ? "," : "") << t.size(i);
  s << "] " << dtypeName(t.scalar_type());
  return s.str();
}

static std::string inputShapes(const Napi::CallbackInfo& info) {
  std::ostringstream s;
  bool first = true;
  auto add = [&](const Napi::Value& v) {
    if (!TensorHandle::IsHandle(v)) return;
    TensorHandle* h = TensorHandle::Of(v);
    s << (first ? "" : ", ") << (h == nullptr ? std::string("disposed") : shapeOf(h->tensor));
    first = false;
  };
  for (size_t i = 0; i < info.Length(); ++i) {
    if (info[i].IsArray()) {
      Napi::Array a = info[i].As<Napi::Array>();
      for (uint32_t k = 0; k < a.Length(); ++k) add(a.Get(k));
    } else {
      add(info[i]);
    }
  }
  if (TensorHandle::IsHandle(info.This())) add(info.This());
  return s.str();
}

// libtorch messages carry a C++ backtrace and source locations after the first line; users need the first line.
static std::string firstLine(const std::string& m) {
  auto pos = m.find('\n');
  return pos == std::string::npos ? m : m.substr(0, pos);
}

Napi::Value guard(const Napi::CallbackInfo& info, const char* op, const std::function<Napi::Value()>& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string shapes = inputShapes(info);
    throw Napi::Error::New(info.Env(), std::string(op) + ": " + firstLine(e.what_without_backtrace()) + (shapes.empty() ? "" : " (inputs: " + shapes + ")"));
  } catch (const std::exception& e) {
    std::string shapes = inputShapes(info);
    throw Napi::Error::New(info.Env(), std::string(op) + ": " + firstLine(e.what()) + (shapes.empty() ? "" : " (inputs: " + shapes + ")"));
  }
}

Napi::Value liveHandleCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(liveHandles.load()));
}

Napi::Value liveNativeBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(liveBytes.load()));
}

}  // namespace avap
