// Entry point of the avap libtorch addon: registers the tensor handle, the ops and the optimizers.
#include "tensor_handle.h"

#include <c10/util/Logging.h>
#include <malloc.h>

#include <climits>
#include <cstdlib>

namespace avap {

// glibc serves every block above its mmap threshold (at most 32 MB by default) with a fresh mmap and
// returns it with munmap, so each full-resolution activation of a training step ([8, 32, 256, 256]
// float32 = 64 MB) is zeroed page by page by the kernel again: a 256² AVAP step spent most of its time
// in page faults (bench:avap). Keeping freed memory in the heap for reuse removes that; peak memory is
// unchanged, it is only not handed back to the system between steps.
static void keepFreedMemoryForReuse() {
  mallopt(M_MMAP_THRESHOLD, INT_MAX);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  keepFreedMemoryForReuse();
  // libtorch without glog (PyTorch's wheels) reads TORCH_CPP_LOG_LEVEL only when asked to; Python's
  // torch asks at import, a C++ program must itself.
  if (std::getenv("TORCH_CPP_LOG_LEVEL") != nullptr) c10::initLogging();
  exports.Set("NativeTensor", TensorHandle::Define(env));
  registerTensorOps(env, exports);
  registerNNOps(env, exports);
  registerOptimizer(env, exports);
  registerDistributed(env, exports);
  registerDevice(env, exports);
  return exports;
}

NODE_API_MODULE(avap_torch, Init)

}  // namespace avap
