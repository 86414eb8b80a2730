// c10d's NCCL process group, for collectives on tensors that live on a GPU. It is compiled only where
// the libtorch has CUDA and NCCL's and CUDA's headers are found (native/libtorch.js decides); elsewhere
// nccl_backend_absent.cc says so and GPU tensors go through Gloo by way of the CPU.
#pragma once

#include "compat.h"

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

#if AVAP_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

namespace avap {

// What a process group's collectives are called on: c10d::Backend from 2.0 on (Gloo's and NCCL's
// process groups both derive from it), c10d::ProcessGroup in 1.13.
#if AVAP_TORCH_AT_LEAST(2, 0)
using CollectiveBackend = c10d::Backend;
#else
using CollectiveBackend = c10d::ProcessGroup;
#endif

// Whether this addon was built with NCCL.
bool ncclBuilt();

// NCCL's process group over `store` for this process's GPU `device` (made current); null without NCCL.
c10::intrusive_ptr<CollectiveBackend> makeNcclBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                      std::chrono::milliseconds timeout, c10::DeviceIndex device);

// Ends NCCL's communicators and watchdog before the process group is dropped.
void shutdownNcclBackend(CollectiveBackend& backend);

}  // namespace avap
