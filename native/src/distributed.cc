// PyTorch's own distributed engine (c10d: a TCPStore rendezvous, a Gloo process group and, for tensors
// on a GPU, an NCCL one) behind a few synchronous collectives. One default group per process, as
// torch.distributed's init_process_group with its "cpu:gloo,cuda:nccl" backends: each collective goes
// to the backend of its tensors' device. The training logic (which tensors, when, how gradients are
// averaged) lives in TypeScript.
#include "nccl_backend.h"
#include "tensor_handle.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/utils/tensor_flatten.h>

#include <chrono>
#include <map>

namespace avap {

static c10::intrusive_ptr<CollectiveBackend> group;
// NCCL's group for GPU tensors, when this process trains on a GPU and the addon has NCCL.
static c10::intrusive_ptr<CollectiveBackend> gpuGroup;
static int groupRank = 0;
static int groupSize = 1;
// The job's store without this attempt's prefix: under torchrun's agent it outlives the workers, so a
// restarted worker can read what the job's earlier attempts wrote there.
static c10::intrusive_ptr<c10d::Store> jobStore;

// DDP's default bucket: large enough that per-collective latency is negligible, small enough that the
// flattened copy does not double a large model's memory.
static const int64_t kBucketBytes = 25 * 1024 * 1024;

static CollectiveBackend& pg(const char* op) {
  if (!group) throw std::runtime_error(std::string(op) + " needs a process group: none is initialised");
  return *group;
}

// Gloo reports a failed collective through the work object; waiting rethrows its exception here, on
// the calling thread, where guard() turns it into a JS error.
static void waitFor(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

using Collective = std::function<c10::intrusive_ptr<c10d::Work>(CollectiveBackend&, std::vector<at::Tensor>&)>;

// Runs `collective` on `flat` in place with its device's backend: NCCL on the GPUs themselves, or Gloo,
// which computes on CPU tensors, so that a GPU bucket without NCCL goes through a CPU copy and back.
static void runOn(at::Tensor& flat, const char* op, const Collective& collective) {
  if (flat.is_cuda() && gpuGroup) {
    std::vector<at::Tensor> t{flat};
    waitFor(collective(*gpuGroup, t));
    return;
  }
  std::vector<at::Tensor> staged{flat.is_cpu() ? flat : flat.cpu()};
  waitFor(collective(pg(op), staged));
  if (!flat.is_cpu()) flat.copy_(staged[0]);
}

// Runs of at most kBucketBytes of one dtype and device, in order; each is flattened, reduced, divided
// by `divisor` (while still flat: one pass over the sums instead of one per tensor) and copied back.
static void allreduceBuckets(std::vector<at::Tensor>& tensors, const char* op, double divisor = 1) {
  pg(op);
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> bucket{tensors[i]};
    int64_t bytes = tensors[i].numel() * static_cast<int64_t>(tensors[i].element_size());
    size_t j = i + 1;
    for (; j < tensors.size(); ++j) {
      int64_t b = tensors[j].numel() * static_cast<int64_t>(tensors[j].element_size());
      if (tensors[j].scalar_type() != tensors[i].scalar_type() || tensors[j].device() != tensors[i].device() || bytes + b > kBucketBytes) break;
      bucket.push_back(tensors[j]);
      bytes += b;
    }
    at::Tensor flat = torch::utils::flatten_dense_tensors(bucket);
    runOn(flat, op, [](CollectiveBackend& g, std::vector<at::Tensor>& t) { return g.allreduce(t); });
    if (divisor != 1) flat.div_(divisor);
    auto parts = torch::utils::unflatten_dense_tensors(flat, bucket);
    for (size_t k = 0; k < bucket.size(); ++k) bucket[k].copy_(parts[k]);
    i = j;
  }
}

static std::vector<uint8_t> bytesOf(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }
static std::string stringOf(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

// Before the process group's own key exchange, which would only time out: a second process claiming
// a rank already in this store (another run on the same port) and ranks that disagree on WORLD_SIZE
// are named at once. Rank 0 waits for every rank's entry, so a missing rank ends in the store timeout.
static void checkJoin(c10d::Store& store, const std::string& host, int64_t port, int rank, int size) {
  std::string where = host + ":" + std::to_string(port);
  if (store.add("avap/joined/" + std::to_string(rank), 1) > 1) {
    throw std::runtime_error("rank " + std::to_string(rank) + " has already joined the rendezvous at " + where + ": another run is using this port");
  }
  store.set("avap/world_size/" + std::to_string(rank), bytesOf(std::to_string(size)));
  auto refuse = [&](const std::string& theirs, int other) {
    throw std::runtime_error("WORLD_SIZE is " + std::to_string(size) + " here but " + theirs + " on rank " + std::to_string(other));
  };
  if (rank == 0) {
    for (int r = 1; r < size; ++r) {
      std::string theirs = stringOf(store.get("avap/world_size/" + std::to_string(r)));
      if (theirs == std::to_string(size)) continue;
      // Rank 0 hosts the store: it stays until that rank has read its entry and can say so itself.
      store.wait({"avap/checked/" + std::to_string(r)});
      refuse(theirs, r);
    }
  } else {
    std::string theirs = stringOf(store.get("avap/world_size/0"));
    store.set("avap/checked/" + std::to_string(rank), bytesOf("1"));
    if (theirs != std::to_string(size)) refuse(theirs, 0);
  }
}

// distInit(host, port, rank, worldSize, isStoreServer, timeoutMs, prefix, gloo device kind, name, gpu)
// with gpu this process's GPU index, or -1 when it computes on the CPU. Returns the backend that GPU
// tensors' collectives use: 'nccl', or 'gloo' (by way of the CPU) when the addon has no NCCL.
static Napi::Value distInit(const Napi::CallbackInfo& info) {
  static const char* OPN = "distInit";
  return guard(info, OPN, [&]() -> Napi::Value {
    if (group) throw std::runtime_error("a process group is already initialised in this process");
    std::string host = stringArg(info, 0, OPN);
    int64_t port = intArg(info, 1, OPN);
    int rank = static_cast<int>(intArg(info, 2, OPN));
    int size = static_cast<int>(intArg(info, 3, OPN));
    bool isServer = boolArg(info, 4, OPN);
    std::chrono::milliseconds timeout(intArg(info, 5, OPN));
    std::string prefix = stringArg(info, 6, OPN);
    std::string deviceKind = stringArg(info, 7, OPN);
    std::string deviceName = stringArg(info, 8, OPN);
    int64_t gpu = intArg(info, 9, OPN);

    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = isServer;
    so.numWorkers = static_cast<size_t>(size);
    // The process group's own key exchange is the rendezvous: a server that also waited for its workers
    // to check in deadlocked with them in this libtorch (every rank timed out).
    so.waitWorkers = false;
    so.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(host, so);
    jobStore = store;
    if (!prefix.empty()) store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
    checkJoin(*store, host, port, rank, size);

    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(deviceKind == "interface" ? c10d::ProcessGroupGloo::createDeviceForInterface(deviceName)
                                                      : c10d::ProcessGroupGloo::createDeviceForHostname(deviceName));
    opts->threads = 2;
    c10::intrusive_ptr<CollectiveBackend> gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
    // NCCL's own keys, as torch.distributed gives each backend of a group. Both are made before either
    // is kept, so a failure leaves this process without a group rather than half of one.
    auto nccl = gpu >= 0 ? makeNcclBackend(c10::make_intrusive<c10d::PrefixStore>("nccl", store), rank, size, timeout, static_cast<c10::DeviceIndex>(gpu))
                         : c10::intrusive_ptr<CollectiveBackend>();
    group = gloo;
    gpuGroup = nccl;
    groupRank = rank;
    groupSize = size;
    return Napi::String::New(info.Env(), gpuGroup ? "nccl" : "gloo");
  });
}

static Napi::Value distDestroy(const Napi::CallbackInfo& info) {
  return guard(info, "distDestroy", [&]() -> Napi::Value {
    if (gpuGroup) shutdownNcclBackend(*gpuGroup);
    gpuGroup.reset();
    group.reset();
    jobStore.reset();
    return info.Env().Undefined();
  });
}

// distStoreAdd(key, delta): adds delta to the job store's counter at key (created at 0) and returns it.
static Napi::Value distStoreAdd(const Napi::CallbackInfo& info) {
  static const char* OPN = "distStoreAdd";
  return guard(info, OPN, [&]() -> Napi::Value {
    if (!jobStore) throw std::runtime_error(std::string(OPN) + " needs a process group: none is initialised");
    int64_t value = jobStore->add(stringArg(info, 0, OPN), intArg(info, 1, OPN));
    return Napi::Number::New(info.Env(), static_cast<double>(value));
  });
}

// distAllReduce(tensors[]): sums each tensor over the ranks, in place.
static Napi::Value distAllReduce(const Napi::CallbackInfo& info) {
  static const char* OPN = "allreduce";
  return guard(info, OPN, [&]() -> Napi::Value {
    torch::NoGradGuard noGrad;
    auto tensors = tensorListArg(info, 0, OPN);
    allreduceBuckets(tensors, OPN);
    return info.Env().Undefined();
  });
}

// distBroadcast(tensors[]): rank 0's values to every rank, in place (bucketed as allreduce).
static Napi::Value distBroadcast(const Napi::CallbackInfo& info) {
  static const char* OPN = "broadcast";
  return guard(info, OPN, [&]() -> Napi::Value {
    torch::NoGradGuard noGrad;
    auto tensors = tensorListArg(info, 0, OPN);
    pg(OPN);
    std::map<std::pair<std::string, at::ScalarType>, std::vector<at::Tensor>> byKind;
    for (auto& t : tensors) byKind[{t.device().str(), t.scalar_type()}].push_back(t);
    for (auto& [kind, list] : byKind) {
      at::Tensor flat = torch::utils::flatten_dense_tensors(list);
      c10d::BroadcastOptions bo;
      bo.rootRank = 0;
      runOn(flat, OPN, [&](CollectiveBackend& g, std::vector<at::Tensor>& t) { return g.broadcast(t, bo); });
      auto parts = torch::utils::unflatten_dense_tensors(flat, list);
      for (size_t k = 0; k < list.size(); ++k) list[k].copy_(parts[k]);
    }
    return info.Env().Undefined();
  });
}

static Napi::Value distBarrier(const Napi::CallbackInfo& info) {
  static const char* OPN = "barrier";
  return guard(info, OPN, [&]() -> Napi::Value {
    waitFor(pg(OPN).barrier());
    return info.Env().Undefined();
  });
}

// distAverageGradients(params[]): DDP's reduction after backward. A parameter that has a gradient on
// some rank gets the mean over all ranks (zero where a rank had none); one with no gradient on any rank
// keeps none, so the optimizer skips it exactly as in one process.
static Napi::Value distAverageGradients(const Napi::CallbackInfo& info) {
  static const char* OPN = "averageGradients";
  return guard(info, OPN, [&]() -> Napi::Value {
    torch::NoGradGuard noGrad;
    auto params = tensorListArg(info, 0, OPN);
    pg(OPN);
    at::Tensor has = torch::zeros({static_cast<int64_t>(params.size())}, torch::kFloat32);
    auto h = has.accessor<float, 1>();
    for (size_t i = 0; i < params.size(); ++i) h[i] = params[i].grad().defined() ? 1.0f : 0.0f;
    std::vector<at::Tensor> mask{has};
    allreduceBuckets(mask, OPN);
    std::vector<at::Tensor> grads;
    for (size_t i = 0; i < params.size(); ++i) {
      if (h[i] == 0.0f) continue;
      if (!params[i].grad().defined()) params[i].mutable_grad() = torch::zeros_like(params[i]);
      grads.push_back(params[i].grad());
    }
    allreduceBuckets(grads, OPN, groupSize);
    return info.Env().Undefined();
  });
}

// Seconds spent in SyncBatchNorm's sums over the ranks (forward and backward: waiting for the slowest
// rank included) and their number, since the last distTakeStatisticsTimes(). Autograd calls the
// backward half from inside libtorch, where the caller cannot time it.
static double statisticsSeconds = 0;
static int64_t statisticsCalls = 0;

static void timedStatisticsSum(std::vector<at::Tensor>& t, const char* op) {
  auto start = std::chrono::steady_clock::now();
  allreduceBuckets(t, op);
  statisticsSeconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  statisticsCalls++;
}

static Napi::Value distTakeStatisticsTimes(const Napi::CallbackInfo& info) {
  auto out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), statisticsSeconds));
  out.Set(1u, Napi::Number::New(info.Env(), static_cast<double>(statisticsCalls)));
  statisticsSeconds = 0;
  statisticsCalls = 0;
  return out;
}

// Sum over the ranks as an autograd op: forward sums the input, backward sums the incoming gradient
// (the gradient of a sum that every rank computes and uses). SyncBatchNorm's statistics go through it.
class AllReduceSum : public torch::autograd::Function<AllReduceSum> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& x) {
    std::vector<at::Tensor> t{x.detach().clone().contiguous()};
    timedStatisticsSum(t, "allReduceSumAutograd");
    return t[0];
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*, torch::autograd::variable_list grads) {
    std::vector<at::Tensor> t{grads[0].detach().clone().contiguous()};
    timedStatisticsSum(t, "allReduceSumAutograd (backward)");
    return {t[0]};
  }
};

static Napi::Value allReduceSumAutograd(const Napi::CallbackInfo& info) {
  static const char* OPN = "allReduceSumAutograd";
  return guard(info, OPN, [&]() -> Napi::Value { return wrap(info, AllReduceSum::apply(tensorArg(info, 0, OPN))); });
}

static Napi::Value distNcclBuilt(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), ncclBuilt()); }

void registerDistributed(Napi::Env env, Napi::Object e) {
  e.Set("distNcclBuilt", Napi::Function::New(env, distNcclBuilt, "distNcclBuilt"));
  e.Set("distInit", Napi::Function::New(env, distInit, "distInit"));
  e.Set("distDestroy", Napi::Function::New(env, distDestroy, "distDestroy"));
  e.Set("distStoreAdd", Napi::Function::New(env, distStoreAdd, "distStoreAdd"));
  e.Set("distAllReduce", Napi::Function::New(env, distAllReduce, "distAllReduce"));
  e.Set("distBroadcast", Napi::Function::New(env, distBroadcast, "distBroadcast"));
  e.Set("distBarrier", Napi::Function::New(env, distBarrier, "distBarrier"));
  e.Set("distAverageGradients", Napi::Function::New(env, distAverageGradients, "distAverageGradients"));
  e.Set("distTakeStatisticsTimes", Napi::Function::New(env, distTakeStatisticsTimes, "distTakeStatisticsTimes"));
  e.Set("allReduceSumAutograd", Napi::Function::New(env, allReduceSumAutograd, "allReduceSumAutograd"));
}

}  // namespace avap
