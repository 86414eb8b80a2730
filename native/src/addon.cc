// Entry point of the avap libtorch addon: registers the tensor handle, the ops and the optimizers.
#include "tensor_handle.h"

namespace avap {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeTensor", TensorHandle::Define(env));
  registerTensorOps(env, exports);
  registerNNOps(env, exports);
  registerOptimizer(env, exports);
  return exports;
}

NODE_API_MODULE(avap_torch, Init)

}  // namespace avap
