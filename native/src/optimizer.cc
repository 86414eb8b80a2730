// libtorch's optimizers (Adam, AdamW, SGD) behind one JS class. Learning-rate schedules live in TypeScript
// and only call setLr(); state is saved/loaded as libtorch's own archive bytes.
#include "tensor_handle.h"

namespace avap {

class OptimizerHandle : public Napi::ObjectWrap<OptimizerHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeOptimizer", {
        InstanceMethod("step", &OptimizerHandle::Step),
        InstanceMethod("zeroGrad", &OptimizerHandle::ZeroGrad),
        InstanceMethod("setLr", &OptimizerHandle::SetLr),
        InstanceMethod("save", &OptimizerHandle::Save),
        InstanceMethod("load", &OptimizerHandle::Load),
    });
  }

  // new NativeOptimizer(kind, params, {lr, beta1, beta2, eps, weightDecay, amsgrad, momentum, dampening, nesterov})
  explicit OptimizerHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<OptimizerHandle>(info) {
    guard(info, "optimizer", [&]() -> Napi::Value {
      std::string kind = stringArg(info, 0, "optimizer");
      params = tensorListArg(info, 1, "optimizer");
      if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(info.Env(), "optimizer: argument 2 must be an options object");
      Napi::Object o = info[2].As<Napi::Object>();
      auto num = [&](const char* k, double d) { return o.Has(k) && o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().DoubleValue() : d; };
      auto flag = [&](const char* k) { return o.Has(k) && o.Get(k).IsBoolean() && o.Get(k).As<Napi::Boolean>().Value(); };
      if (kind == "adam") {
        opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(num("lr", 1e-3))
            .betas(std::make_tuple(num("beta1", 0.9), num("beta2", 0.999))).eps(num("eps", 1e-8))
            .weight_decay(num("weightDecay", 0)).amsgrad(flag("amsgrad")));
      } else if (kind == "adamw") {
        opt = std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(num("lr", 1e-3))
            .betas(std::make_tuple(num("beta1", 0.9), num("beta2", 0.999))).eps(num("eps", 1e-8))
            .weight_decay(num("weightDecay", 1e-2)).amsgrad(flag("amsgrad")));
      } else if (kind == "sgd") {
        opt = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(num("lr", 1e-2))
            .momentum(num("momentum", 0)).dampening(num("dampening", 0)).weight_decay(num("weightDecay", 0)).nesterov(flag("nesterov")));
      } else {
        throw std::invalid_argument("unknown optimizer '" + kind + "' (adam, adamw, sgd)");
      }
      return info.Env().Undefined();
    });
  }

 private:
  std::vector<at::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> opt;

  Napi::Value Step(const Napi::CallbackInfo& info) {
    return guard(info, "optimizer.step", [&]() -> Napi::Value {
      at::NoGradGuard ng;
      opt->step();
      return info.Env().Undefined();
    });
  }

  // PyTorch 2's default (set_to_none): dropping the gradients is cheaper than zeroing them.
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    for (auto& p : params) p.mutable_grad().reset();
    return info.Env().Undefined();
  }

  Napi::Value SetLr(const Napi::CallbackInfo& info) {
    return guard(info, "optimizer.setLr", [&]() -> Napi::Value {
      double lr = doubleArg(info, 0, "optimizer.setLr");
      for (auto& group : opt->param_groups()) group.options().set_lr(lr);
      return info.Env().Undefined();
    });
  }

  Napi::Value Save(const Napi::CallbackInfo& info) {
    return guard(info, "optimizer.save", [&]() -> Napi::Value {
      torch::serialize::OutputArchive archive;
      opt->save(archive);
      std::string bytes;
      archive.save_to([&](const void* data, size_t n) {
        bytes.append(static_cast<const char*>(data), n);
        return n;
      });
      return Napi::Buffer<char>::Copy(info.Env(), bytes.data(), bytes.size());
    });
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    return guard(info, "optimizer.load", [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "optimizer.load: argument 0 must be a Buffer");
      Napi::Buffer<char> buf = info[0].As<Napi::Buffer<char>>();
      torch::serialize::InputArchive archive;
      // Onto the parameters' device, whichever device saved the state (a run resumed on another machine).
      c10::optional<torch::Device> device;
      if (!params.empty()) device = params[0].device();
      archive.load_from(buf.Data(), buf.Length(), device);
      opt->load(archive);
      return info.Env().Undefined();
    });
  }
};

void registerOptimizer(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeOptimizer", OptimizerHandle::Define(env));
}

}  // namespace avap
