// The JavaScript handle of one at::Tensor, and the argument helpers every op uses.
// Ops live in ops_*.cc, one C++ function each; no model logic lives in C++.
#pragma once
#include <napi.h>
#include <torch/torch.h>
#include <functional>
#include <string>
#include <vector>

namespace avap {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, at::Tensor tensor);
  static bool IsHandle(const Napi::Value& v);
  /** The handle behind a JS object, or nullptr once it has been disposed (dispose() removes the wrap). */
  static TensorHandle* Of(const Napi::Value& v);
  static at::Tensor& From(const Napi::Value& v, const char* op, size_t argIndex);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;
  void Finalize(Napi::Env env) override;

  at::Tensor tensor;

 private:
  static Napi::FunctionReference constructor;
  int64_t reportedBytes = 0;
  void Release(Napi::Env env);

  // Methods are plain functions on the prototype rather than ObjectWrap instance methods, so that they
  // still answer (isDisposed, dispose) or fail with a clear message after dispose() removed the wrap.
  static Napi::Value Shape(const Napi::CallbackInfo& info);
  static Napi::Value DType(const Napi::CallbackInfo& info);
  static Napi::Value Device(const Napi::CallbackInfo& info);
  static Napi::Value Numel(const Napi::CallbackInfo& info);
  static Napi::Value Bytes(const Napi::CallbackInfo& info);
  static Napi::Value Data(const Napi::CallbackInfo& info);
  static Napi::Value Item(const Napi::CallbackInfo& info);
  static Napi::Value RequiresGrad(const Napi::CallbackInfo& info);
  static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info);
  static Napi::Value Grad(const Napi::CallbackInfo& info);
  static Napi::Value ClearGrad(const Napi::CallbackInfo& info);
  static Napi::Value Backward(const Napi::CallbackInfo& info);
  static Napi::Value Dispose(const Napi::CallbackInfo& info);
  static Napi::Value IsDisposed(const Napi::CallbackInfo& info);
};

// ---- argument helpers: each names the op and the argument position in its error ----
at::Tensor& tensorArg(const Napi::CallbackInfo& info, size_t i, const char* op);
c10::optional<at::Tensor> optTensorArg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::vector<at::Tensor> tensorListArg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::vector<int64_t> intsArg(const Napi::CallbackInfo& info, size_t i, const char* op);
int64_t intArg(const Napi::CallbackInfo& info, size_t i, const char* op);
double doubleArg(const Napi::CallbackInfo& info, size_t i, const char* op);
bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* op);
std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* op);
bool isMissing(const Napi::CallbackInfo& info, size_t i);

at::ScalarType parseDType(const std::string& name, const char* op);
std::string dtypeName(at::ScalarType t);
at::Device parseDevice(const std::string& name, const char* op);
at::TensorOptions optionsArg(const Napi::CallbackInfo& info, size_t dtypeIndex, size_t deviceIndex, const char* op);

// Runs an op body; any libtorch/C++ exception becomes a JS Error "op: message (inputs: shapes)".
Napi::Value guard(const Napi::CallbackInfo& info, const char* op, const std::function<Napi::Value()>& body);
inline Napi::Value wrap(const Napi::CallbackInfo& info, at::Tensor t) { return TensorHandle::Wrap(info.Env(), std::move(t)); }

void registerTensorOps(Napi::Env env, Napi::Object exports);
void registerNNOps(Napi::Env env, Napi::Object exports);
void registerOptimizer(Napi::Env env, Napi::Object exports);
void registerDistributed(Napi::Env env, Napi::Object exports);
void registerDevice(Napi::Env env, Napi::Object exports);

}  // namespace avap
