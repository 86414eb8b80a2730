// Tensor creation, shape, elementwise and reduction ops: one exported function each.
#include "tensor_handle.h"

#include <cmath>

namespace avap {

#define OP(name) OP_AS(name, #name)
// OP_AS names the op in errors as the user called it when the addon function's name differs (max → maxDim).
#define OP_AS(name, label)                                              \
  static Napi::Value name(const Napi::CallbackInfo& info) {             \
    static const char* OPN = label;                                     \
    return guard(info, OPN, [&]() -> Napi::Value {
#define END \
  });       \
  }

// A number argument becomes a Scalar, a tensor argument stays a tensor (PyTorch's overloads).
static bool isScalar(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() && (info[i].IsNumber() || info[i].IsBoolean()); }
// A JS number holding an integer becomes an integral Scalar, as a Python int would: int64 + 2 stays int64
// (a double Scalar would promote it to float32), while float tensors are unaffected.
static at::Scalar numberScalar(double v) {
  if (std::trunc(v) == v && std::abs(v) <= 9007199254740992.0) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}
static at::Scalar scalarArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (i >= info.Length() || !(info[i].IsNumber() || info[i].IsBoolean())) {
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": argument " + std::to_string(i) + " must be a number");
  }
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  return numberScalar(info[i].As<Napi::Number>().DoubleValue());
}
static c10::optional<at::Generator> generatorArg(const Napi::CallbackInfo& info, size_t i, const char* op);

// ---------------------------------------------------------------- creation
OP(zeros) return wrap(info, at::zeros(intsArg(info, 0, OPN), optionsArg(info, 1, 2, OPN))); END
OP(ones) return wrap(info, at::ones(intsArg(info, 0, OPN), optionsArg(info, 1, 2, OPN))); END
OP(full) return wrap(info, at::full(intsArg(info, 0, OPN), scalarArg(info, 1, OPN), optionsArg(info, 2, 3, OPN))); END
OP(arange) return wrap(info, at::arange(scalarArg(info, 0, OPN), scalarArg(info, 1, OPN), scalarArg(info, 2, OPN), optionsArg(info, 3, 4, OPN))); END
OP(randn) return wrap(info, at::randn(intsArg(info, 0, OPN), generatorArg(info, 3, OPN), optionsArg(info, 1, 2, OPN))); END
OP(rand) return wrap(info, at::rand(intsArg(info, 0, OPN), generatorArg(info, 3, OPN), optionsArg(info, 1, 2, OPN))); END
OP(randint) return wrap(info, at::randint(intArg(info, 0, OPN), intArg(info, 1, OPN), intsArg(info, 2, OPN), generatorArg(info, 5, OPN), optionsArg(info, 3, 4, OPN).dtype(isMissing(info, 3) ? at::kLong : parseDType(stringArg(info, 3, OPN), OPN)))); END
OP(randperm) return wrap(info, at::randperm(intArg(info, 0, OPN), generatorArg(info, 1, OPN), at::TensorOptions().dtype(at::kLong))); END

// fromData(typedArray, shape, dtype?): copies the typed array's bytes into a new tensor.
OP_AS(fromData, "tensor")
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "tensor: argument 0 must be a typed array");
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  at::ScalarType source;
  switch (arr.TypedArrayType()) {
    case napi_float32_array: source = at::kFloat; break;
    case napi_float64_array: source = at::kDouble; break;
    case napi_int32_array: source = at::kInt; break;
    case napi_bigint64_array: source = at::kLong; break;
    case napi_uint8_array: case napi_uint8_clamped_array: source = at::kByte; break;
    default: throw std::invalid_argument("unsupported typed array (Float32Array, Float64Array, Int32Array, BigInt64Array, Uint8Array)");
  }
  std::vector<int64_t> shape = intsArg(info, 1, OPN);
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  if (numel != static_cast<int64_t>(arr.ElementLength())) {
    throw std::invalid_argument("typed array has " + std::to_string(arr.ElementLength()) + " elements but the shape needs " + std::to_string(numel));
  }
  uint8_t* ptr = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  at::Tensor t = at::from_blob(ptr, shape, at::TensorOptions().dtype(source)).clone();
  if (!isMissing(info, 2)) t = t.to(parseDType(stringArg(info, 2, OPN), OPN));
  return wrap(info, t);
END

// ---------------------------------------------------------------- shape ops
OP(reshape) return wrap(info, tensorArg(info, 0, OPN).reshape(intsArg(info, 1, OPN))); END
OP(view) return wrap(info, tensorArg(info, 0, OPN).view(intsArg(info, 1, OPN))); END
OP(permute) return wrap(info, tensorArg(info, 0, OPN).permute(intsArg(info, 1, OPN))); END
OP(transpose) return wrap(info, tensorArg(info, 0, OPN).transpose(intArg(info, 1, OPN), intArg(info, 2, OPN))); END
// contiguous(t, format?): 'contiguous' (row-major, the default) or 'channels_last' (NHWC strides of an
// NCHW tensor, the layout oneDNN's convolutions run fastest in).
static at::MemoryFormat memoryFormatArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (isMissing(info, i)) return at::MemoryFormat::Contiguous;
  const std::string f = stringArg(info, i, op);
  if (f == "contiguous") return at::MemoryFormat::Contiguous;
  if (f == "channels_last") return at::MemoryFormat::ChannelsLast;
  throw std::invalid_argument("memory format must be 'contiguous' or 'channels_last', got '" + f + "'");
}
OP(contiguous)
  at::Tensor& t = tensorArg(info, 0, OPN);
  const at::MemoryFormat format = memoryFormatArg(info, 1, OPN);
  if (format == at::MemoryFormat::ChannelsLast && t.dim() != 4) throw std::invalid_argument("channels_last needs a 4-d tensor, got " + std::to_string(t.dim()) + "-d");
  return wrap(info, t.contiguous(format));
END
// 'channels_last' for NHWC strides that are not also row-major ones (a [N, C, 1, 1] tensor is both).
OP(memoryFormat)
  at::Tensor& t = tensorArg(info, 0, OPN);
  const bool nhwc = t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
  return Napi::String::New(info.Env(), nhwc ? "channels_last" : t.is_contiguous() ? "contiguous" : "strided");
END
OP(clone) return wrap(info, tensorArg(info, 0, OPN).clone()); END
OP(cat) return wrap(info, at::cat(tensorListArg(info, 0, OPN), intArg(info, 1, OPN))); END
OP(stack) return wrap(info, at::stack(tensorListArg(info, 0, OPN), intArg(info, 1, OPN))); END
OP(narrow) return wrap(info, tensorArg(info, 0, OPN).narrow(intArg(info, 1, OPN), intArg(info, 2, OPN), intArg(info, 3, OPN))); END
OP(slice) return wrap(info, tensorArg(info, 0, OPN).slice(intArg(info, 1, OPN), intArg(info, 2, OPN), intArg(info, 3, OPN), intArg(info, 4, OPN))); END
OP(select) return wrap(info, tensorArg(info, 0, OPN).select(intArg(info, 1, OPN), intArg(info, 2, OPN))); END
OP(indexSelect) return wrap(info, tensorArg(info, 0, OPN).index_select(intArg(info, 1, OPN), tensorArg(info, 2, OPN))); END
OP(gather) return wrap(info, tensorArg(info, 0, OPN).gather(intArg(info, 1, OPN), tensorArg(info, 2, OPN))); END
OP(squeeze) return wrap(info, isMissing(info, 1) ? tensorArg(info, 0, OPN).squeeze() : tensorArg(info, 0, OPN).squeeze(intArg(info, 1, OPN))); END
OP(unsqueeze) return wrap(info, tensorArg(info, 0, OPN).unsqueeze(intArg(info, 1, OPN))); END
OP(expand) return wrap(info, tensorArg(info, 0, OPN).expand(intsArg(info, 1, OPN))); END
OP(flatten) return wrap(info, tensorArg(info, 0, OPN).flatten(intArg(info, 1, OPN), intArg(info, 2, OPN))); END
OP(flip) return wrap(info, tensorArg(info, 0, OPN).flip(intsArg(info, 1, OPN))); END
OP(repeat) return wrap(info, tensorArg(info, 0, OPN).repeat(intsArg(info, 1, OPN))); END
OP_AS(toDType, "to") return wrap(info, tensorArg(info, 0, OPN).to(parseDType(stringArg(info, 1, OPN), OPN))); END
// toDevice(t, device, nonBlocking = false): with nonBlocking a copy from pinned memory to a GPU is queued
// on the current stream and returns at once, as tensor.to(device, non_blocking=True).
OP_AS(toDevice, "to")
  const bool nonBlocking = !isMissing(info, 2) && boolArg(info, 2, OPN);
  return wrap(info, tensorArg(info, 0, OPN).to(parseDevice(stringArg(info, 1, OPN), OPN), nonBlocking));
END
// tensor.pin_memory(): a copy in page-locked memory (libtorch's caching host allocator), which the GPU
// reads by DMA; needs a CUDA build.
OP(pinMemory) return wrap(info, tensorArg(info, 0, OPN).pin_memory()); END
OP(detach) return wrap(info, tensorArg(info, 0, OPN).detach()); END

// ---------------------------------------------------------------- elementwise
#define BINARY(name, expr_tt, expr_ts)                                         \
  OP(name)                                                                     \
    at::Tensor& a = tensorArg(info, 0, OPN);                                   \
    if (isScalar(info, 1)) { at::Scalar b = scalarArg(info, 1, OPN); return wrap(info, expr_ts); } \
    at::Tensor& b = tensorArg(info, 1, OPN);                                   \
    return wrap(info, expr_tt);                                                \
  END
BINARY(add, a.add(b), a.add(b))
BINARY(sub, a.sub(b), a.sub(b))
BINARY(mul, a.mul(b), a.mul(b))
BINARY(div, a.div(b), a.div(b))
BINARY(pow, a.pow(b), a.pow(b))
BINARY(eq, a.eq(b), a.eq(b))
BINARY(ne, a.ne(b), a.ne(b))
BINARY(lt, a.lt(b), a.lt(b))
BINARY(le, a.le(b), a.le(b))
BINARY(gt, a.gt(b), a.gt(b))
BINARY(ge, a.ge(b), a.ge(b))
BINARY(maximum, at::maximum(a, b), at::clamp_min(a, b))
BINARY(minimum, at::minimum(a, b), at::clamp_max(a, b))
BINARY(remainder, a.remainder(b), a.remainder(b))
OP(logicalAnd) return wrap(info, tensorArg(info, 0, OPN).logical_and(tensorArg(info, 1, OPN))); END
OP(logicalOr) return wrap(info, tensorArg(info, 0, OPN).logical_or(tensorArg(info, 1, OPN))); END
OP(logicalNot) return wrap(info, tensorArg(info, 0, OPN).logical_not()); END
OP(rsub) return wrap(info, at::rsub(tensorArg(info, 0, OPN), scalarArg(info, 1, OPN))); END

#define UNARY(name, expr) OP(name) at::Tensor& a = tensorArg(info, 0, OPN); return wrap(info, expr); END
UNARY(neg, a.neg())
UNARY(abs, a.abs())
UNARY(exp, a.exp())
UNARY(log, a.log())
UNARY(sqrt, a.sqrt())
UNARY(rsqrt, a.rsqrt())
UNARY(square, a.square())
UNARY(sign, a.sign())
UNARY(floor, a.floor())
UNARY(ceil, a.ceil())
UNARY(round, a.round())
UNARY(tanh, a.tanh())
UNARY(isnan, a.isnan())
UNARY(isfinite, a.isfinite())

OP(where) return wrap(info, at::where(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), tensorArg(info, 2, OPN))); END
OP(clamp)
  c10::optional<at::Scalar> lo, hi;
  if (!isMissing(info, 1)) lo = numberScalar(doubleArg(info, 1, OPN));
  if (!isMissing(info, 2)) hi = numberScalar(doubleArg(info, 2, OPN));
  return wrap(info, at::clamp(tensorArg(info, 0, OPN), lo, hi));
END

// ---------------------------------------------------------------- reductions
// (t, dims|null, keepdim): null reduces over everything (PyTorch's no-dim overload).
#define REDUCE(name, all, dims)                                          \
  OP(name)                                                               \
    at::Tensor& a = tensorArg(info, 0, OPN);                             \
    bool keep = isMissing(info, 2) ? false : boolArg(info, 2, OPN);      \
    if (isMissing(info, 1)) {                                            \
      at::Tensor r = all;                                                \
      if (keep) r = r.reshape(std::vector<int64_t>(a.dim(), 1));         \
      return wrap(info, r);                                              \
    }                                                                    \
    std::vector<int64_t> d = intsArg(info, 1, OPN);                      \
    return wrap(info, dims);                                             \
  END
REDUCE(sum, a.sum(), a.sum(d, keep))
REDUCE(mean, a.mean(), a.mean(d, keep))
REDUCE(amax, a.max(), a.amax(d, keep))
REDUCE(amin, a.min(), a.amin(d, keep))
REDUCE(logsumexp, a.flatten().logsumexp(0), a.logsumexp(d, keep))

OP(var) return wrap(info, tensorArg(info, 0, OPN).var(intsArg(info, 1, OPN), boolArg(info, 2, OPN), boolArg(info, 3, OPN))); END

// max/min over one dim return [values, indices] like PyTorch.
OP_AS(maxDim, "max")
  auto r = tensorArg(info, 0, OPN).max(intArg(info, 1, OPN), isMissing(info, 2) ? false : boolArg(info, 2, OPN));
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, TensorHandle::Wrap(info.Env(), std::get<0>(r)));
  out.Set(1u, TensorHandle::Wrap(info.Env(), std::get<1>(r)));
  return out;
END
OP(argmax)
  at::Tensor& a = tensorArg(info, 0, OPN);
  c10::optional<int64_t> dim;
  if (!isMissing(info, 1)) dim = intArg(info, 1, OPN);
  return wrap(info, a.argmax(dim, isMissing(info, 2) ? false : boolArg(info, 2, OPN)));
END

// ---------------------------------------------------------------- in-place (initialisation, loading weights, optimizers in TS)
OP(copy_) at::NoGradGuard ng; tensorArg(info, 0, OPN).copy_(tensorArg(info, 1, OPN)); return info.Env().Undefined(); END
OP(fill_) at::NoGradGuard ng; tensorArg(info, 0, OPN).fill_(scalarArg(info, 1, OPN)); return info.Env().Undefined(); END
OP(uniform_) at::NoGradGuard ng; tensorArg(info, 0, OPN).uniform_(doubleArg(info, 1, OPN), doubleArg(info, 2, OPN), generatorArg(info, 3, OPN)); return info.Env().Undefined(); END
OP(normal_) at::NoGradGuard ng; tensorArg(info, 0, OPN).normal_(doubleArg(info, 1, OPN), doubleArg(info, 2, OPN), generatorArg(info, 3, OPN)); return info.Env().Undefined(); END

// ---------------------------------------------------------------- global state
// torch.manual_seed: the CPU generator and every GPU's.
OP(manualSeed)
  const auto seed = static_cast<uint64_t>(intArg(info, 0, OPN));
  torch::manual_seed(seed);
  torch::cuda::manual_seed_all(seed);
  return info.Env().Undefined();
END
OP(setNumThreads) at::set_num_threads(static_cast<int>(intArg(info, 0, OPN))); return info.Env().Undefined(); END
OP(getNumThreads) return Napi::Number::New(info.Env(), at::get_num_threads()); END
OP(setGradEnabled) at::GradMode::set_enabled(boolArg(info, 0, OPN)); return info.Env().Undefined(); END
OP(isGradEnabled) return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); END
OP(cudaAvailable) return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); END
OP(cudaDeviceCount) return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count())); END
OP(torchVersion) return Napi::String::New(info.Env(), TORCH_VERSION); END
OP(setDeterministic) at::globalContext().setDeterministicAlgorithms(boolArg(info, 0, OPN), true); return info.Env().Undefined(); END

// ---------------------------------------------------------------- generators
// A generator is passed to JS as a tensor-less object holding its seed state; we keep them in a
// small registry keyed by id so ops can take `gen` as a plain number.
static std::vector<at::Generator>& generators() {
  static std::vector<at::Generator> g;
  return g;
}
OP(newGenerator)
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(intArg(info, 0, OPN)));
  generators().push_back(g);
  return Napi::Number::New(info.Env(), static_cast<double>(generators().size() - 1));
END
OP(seedGenerator)
  size_t id = static_cast<size_t>(intArg(info, 0, OPN));
  if (id >= generators().size()) throw std::invalid_argument("unknown generator id");
  generators()[id].set_current_seed(static_cast<uint64_t>(intArg(info, 1, OPN)));
  return info.Env().Undefined();
END
static c10::optional<at::Generator> generatorArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (isMissing(info, i)) return c10::nullopt;
  size_t id = static_cast<size_t>(intArg(info, i, op));
  if (id >= generators().size()) throw std::invalid_argument("unknown generator id " + std::to_string(id));
  return generators()[id];
}

Napi::Value liveHandleCount(const Napi::CallbackInfo& info);
Napi::Value liveNativeBytes(const Napi::CallbackInfo& info);

void registerTensorOps(Napi::Env env, Napi::Object e) {
#define REG(name) e.Set(#name, Napi::Function::New(env, name, #name))
  REG(zeros); REG(ones); REG(full); REG(arange); REG(randn); REG(rand); REG(randint); REG(randperm); REG(fromData);
  REG(reshape); REG(view); REG(permute); REG(transpose); REG(contiguous); REG(memoryFormat); REG(clone); REG(cat); REG(stack); REG(narrow);
  REG(slice); REG(select); REG(indexSelect); REG(gather); REG(squeeze); REG(unsqueeze); REG(expand); REG(flatten); REG(flip);
  REG(repeat); REG(toDType); REG(toDevice); REG(pinMemory); REG(detach);
  REG(add); REG(sub); REG(mul); REG(div); REG(pow); REG(eq); REG(ne); REG(lt); REG(le); REG(gt); REG(ge); REG(maximum);
  REG(minimum); REG(remainder); REG(logicalAnd); REG(logicalOr); REG(logicalNot); REG(rsub);
  REG(neg); REG(abs); REG(exp); REG(log); REG(sqrt); REG(rsqrt); REG(square); REG(sign); REG(floor); REG(ceil); REG(round);
  REG(tanh); REG(isnan); REG(isfinite); REG(where); REG(clamp);
  REG(sum); REG(mean); REG(amax); REG(amin); REG(logsumexp); REG(var); REG(maxDim); REG(argmax);
  REG(copy_); REG(fill_); REG(uniform_); REG(normal_);
  REG(manualSeed); REG(setNumThreads); REG(getNumThreads); REG(setGradEnabled); REG(isGradEnabled); REG(cudaAvailable);
  REG(cudaDeviceCount); REG(torchVersion); REG(setDeterministic); REG(newGenerator); REG(seedGenerator);
  e.Set("liveTensors", Napi::Function::New(env, liveHandleCount, "liveTensors"));
  e.Set("nativeBytes", Napi::Function::New(env, liveNativeBytes, "nativeBytes"));
#undef REG
}

}  // namespace avap
