// Built where the libtorch has no CUDA or NCCL's headers were not found (see nccl_backend.h): GPU
// tensors' collectives then go through Gloo by way of the CPU.
#include "nccl_backend.h"

namespace avap {

bool ncclBuilt() { return false; }

c10::intrusive_ptr<CollectiveBackend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>&, int, int, std::chrono::milliseconds,
                                                      c10::DeviceIndex) {
  return {};
}

void shutdownNcclBackend(CollectiveBackend&) {}

}  // namespace avap
