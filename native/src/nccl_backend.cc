// Built only with a CUDA libtorch and NCCL's headers (see nccl_backend.h).
#include "nccl_backend.h"

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstdlib>

namespace avap {

bool ncclBuilt() { return true; }

c10::intrusive_ptr<CollectiveBackend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                      std::chrono::milliseconds timeout, c10::DeviceIndex device) {
  // avap's collectives are synchronous: with a blocking wait a failed or timed-out NCCL collective is
  // an exception on the calling thread (then one line from TypeScript) rather than NCCL's watchdog
  // ending the process. A value the user set is kept.
  setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
  setenv("NCCL_BLOCKING_WAIT", "1", 0);
  c10::cuda::set_device(device);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}

void shutdownNcclBackend(CollectiveBackend& backend) {
#if AVAP_TORCH_AT_LEAST(2, 2)
  static_cast<c10d::ProcessGroupNCCL&>(backend).shutdown();
#else
  (void)backend;
#endif
}

}  // namespace avap
