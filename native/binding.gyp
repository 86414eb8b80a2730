{
  # libtorch comes from Debian's libtorch-dev by default; LIBTORCH=/path/to/torch points the build at
  # another one (a PyTorch wheel's torch/ folder or an unpacked libtorch zip, 1.13 or later), whose lib
  # folder is then baked in as rpath. libtorch.js reads the C++ standard, the std::string ABI and whether
  # the CUDA half can be linked from that libtorch itself.
  "targets": [{
    "target_name": "avap_torch",
    # The sources, c10d's NCCL process group among them where this libtorch and its headers allow it.
    "sources": ["<!@(node libtorch.js sources)"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node libtorch.js includes)"],
    # USE_C10D_GLOO: without it ProcessGroupGloo.hpp compiles to nothing; its gloo headers come from libgloo-dev.
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "<!(node libtorch.js abi)", "USE_C10D_GLOO", "<!@(node libtorch.js defines)"],
    "cflags!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
    "cflags_cc": ["<!(node libtorch.js std)", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
    "libraries": ["<!@(node libtorch.js libraries)"]
  }]
}
