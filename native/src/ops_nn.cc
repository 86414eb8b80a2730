// Neural-network ops (PyTorch's torch.nn.functional), one exported function each.
#include "tensor_handle.h"

namespace avap {

#define OP(name)                                                        \
  static Napi::Value name(const Napi::CallbackInfo& info) {             \
    static const char* OPN = #name;                                     \
    return guard(info, OPN, [&]() -> Napi::Value {
#define END \
  });       \
  }

static int64_t reductionArg(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (isMissing(info, i)) return at::Reduction::Mean;
  std::string r = stringArg(info, i, op);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw std::invalid_argument("reduction must be 'mean', 'sum' or 'none', got '" + r + "'");
}

OP(matmul) return wrap(info, at::matmul(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN))); END
OP(linear) return wrap(info, at::linear(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), optTensorArg(info, 2, OPN))); END

// conv2d(x, w, b?, stride[2], padding[2], dilation[2], groups)
OP(conv2d)
  return wrap(info, at::conv2d(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), optTensorArg(info, 2, OPN), intsArg(info, 3, OPN),
                               intsArg(info, 4, OPN), intsArg(info, 5, OPN), intArg(info, 6, OPN)));
END
// convTranspose2d(x, w, b?, stride[2], padding[2], outputPadding[2], groups, dilation[2])
OP(convTranspose2d)
  return wrap(info, at::conv_transpose2d(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), optTensorArg(info, 2, OPN), intsArg(info, 3, OPN),
                                         intsArg(info, 4, OPN), intsArg(info, 5, OPN), intArg(info, 6, OPN), intsArg(info, 7, OPN)));
END
// batchNorm(x, weight?, bias?, runningMean?, runningVar?, training, momentum, eps): updates running stats in place when training.
OP(batchNorm)
  return wrap(info, at::batch_norm(tensorArg(info, 0, OPN), optTensorArg(info, 1, OPN), optTensorArg(info, 2, OPN), optTensorArg(info, 3, OPN),
                                   optTensorArg(info, 4, OPN), boolArg(info, 5, OPN), doubleArg(info, 6, OPN), doubleArg(info, 7, OPN), true));
END
OP(groupNorm)
  return wrap(info, at::group_norm(tensorArg(info, 0, OPN), intArg(info, 1, OPN), optTensorArg(info, 2, OPN), optTensorArg(info, 3, OPN),
                                   doubleArg(info, 4, OPN), true));
END

OP(relu) return wrap(info, at::relu(tensorArg(info, 0, OPN))); END
// In place, as torchvision's ResNet does: saves one activation per block (the input is not needed for backward).
OP(relu_) at::relu_(tensorArg(info, 0, OPN)); return info.Env().Undefined(); END
OP(leakyRelu) return wrap(info, at::leaky_relu(tensorArg(info, 0, OPN), doubleArg(info, 1, OPN))); END
OP(sigmoid) return wrap(info, at::sigmoid(tensorArg(info, 0, OPN))); END
OP(softplus) return wrap(info, at::softplus(tensorArg(info, 0, OPN))); END
OP(softmax) return wrap(info, at::softmax(tensorArg(info, 0, OPN), intArg(info, 1, OPN))); END
OP(logSoftmax) return wrap(info, at::log_softmax(tensorArg(info, 0, OPN), intArg(info, 1, OPN))); END

// maxPool2d(x, kernel[2], stride[2], padding[2], dilation[2], ceilMode)
OP(maxPool2d)
  return wrap(info, at::max_pool2d(tensorArg(info, 0, OPN), intsArg(info, 1, OPN), intsArg(info, 2, OPN), intsArg(info, 3, OPN),
                                   intsArg(info, 4, OPN), boolArg(info, 5, OPN)));
END
OP(avgPool2d)
  return wrap(info, at::avg_pool2d(tensorArg(info, 0, OPN), intsArg(info, 1, OPN), intsArg(info, 2, OPN), intsArg(info, 3, OPN)));
END
OP(adaptiveAvgPool2d) return wrap(info, at::adaptive_avg_pool2d(tensorArg(info, 0, OPN), intsArg(info, 1, OPN))); END

// interpolate(x, size[2], mode 'bilinear'|'nearest', alignCorners)
OP(interpolate)
  at::Tensor& x = tensorArg(info, 0, OPN);
  std::vector<int64_t> size = intsArg(info, 1, OPN);
  std::string mode = stringArg(info, 2, OPN);
  if (mode == "bilinear") return wrap(info, at::upsample_bilinear2d(x, size, boolArg(info, 3, OPN), c10::nullopt, c10::nullopt));
  if (mode == "nearest") return wrap(info, at::upsample_nearest2d(x, size, c10::nullopt, c10::nullopt));
  throw std::invalid_argument("mode must be 'bilinear' or 'nearest', got '" + mode + "'");
END

OP(dropout) return wrap(info, at::dropout(tensorArg(info, 0, OPN), doubleArg(info, 1, OPN), boolArg(info, 2, OPN))); END

// crossEntropy(logits [N,C,...], target int64 [N,...], weight?, reduction, ignoreIndex, labelSmoothing)
OP(crossEntropy)
  return wrap(info, at::cross_entropy_loss(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), optTensorArg(info, 2, OPN), reductionArg(info, 3, OPN),
                                           isMissing(info, 4) ? -100 : intArg(info, 4, OPN), isMissing(info, 5) ? 0.0 : doubleArg(info, 5, OPN)));
END
OP(nllLoss)
  return wrap(info, at::nll_loss_nd(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), optTensorArg(info, 2, OPN), reductionArg(info, 3, OPN),
                                    isMissing(info, 4) ? -100 : intArg(info, 4, OPN)));
END
OP(binaryCrossEntropyWithLogits)
  return wrap(info, at::binary_cross_entropy_with_logits(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), optTensorArg(info, 2, OPN),
                                                         c10::nullopt, reductionArg(info, 3, OPN)));
END
OP(mseLoss) return wrap(info, at::mse_loss(tensorArg(info, 0, OPN), tensorArg(info, 1, OPN), reductionArg(info, 2, OPN))); END
OP(oneHot) return wrap(info, at::one_hot(tensorArg(info, 0, OPN), intArg(info, 1, OPN))); END

void registerNNOps(Napi::Env env, Napi::Object e) {
#define REG(name) e.Set(#name, Napi::Function::New(env, name, #name))
  REG(matmul); REG(linear); REG(conv2d); REG(convTranspose2d); REG(batchNorm); REG(groupNorm); REG(relu); REG(relu_); REG(leakyRelu);
  REG(sigmoid); REG(softplus); REG(softmax); REG(logSoftmax); REG(maxPool2d); REG(avgPool2d); REG(adaptiveAvgPool2d);
  REG(interpolate); REG(dropout); REG(crossEntropy); REG(nllLoss); REG(binaryCrossEntropyWithLogits); REG(mseLoss); REG(oneHot);
#undef REG
}

}  // namespace avap
