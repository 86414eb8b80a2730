{
  # libtorch comes from Debian's libtorch-dev by default; LIBTORCH=/path/to/libtorch points the build
  # at another install (for example a CUDA-enabled one), whose lib folder is then baked in as rpath.
  "variables": {
    "libtorch%": "<!(node -p \"process.env.LIBTORCH || ''\")"
  },
  "targets": [{
    "target_name": "avap_torch",
    "sources": ["src/addon.cc", "src/tensor_handle.cc", "src/ops_tensor.cc", "src/ops_nn.cc", "src/optimizer.cc", "src/distributed.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    # USE_C10D_GLOO: without it ProcessGroupGloo.hpp compiles to nothing; its gloo headers come from libgloo-dev.
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GLIBCXX_USE_CXX11_ABI=1", "USE_C10D_GLOO"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
    "conditions": [
      ["libtorch==''", {
        "include_dirs": ["/usr/include/torch/csrc/api/include", "/usr/include"],
        "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
      }, {
        "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
        "libraries": ["-L<(libtorch)/lib", "-Wl,-rpath,<(libtorch)/lib", "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10",
                      "<!(test -f <(libtorch)/lib/libtorch_cuda.so && echo -ltorch_cuda -lc10_cuda || echo)", "-Wl,--as-needed"]
      }]
    ]
  }]
}
