#!/usr/bin/env node
// What binding.gyp needs to know about the libtorch it builds against, read from that libtorch itself:
// Debian's libtorch-dev by default, or LIBTORCH=/path/to/torch (a PyTorch wheel's torch/ folder, or an
// official libtorch zip unpacked). `node libtorch.js FIELD` prints one field for gyp's <!(...) expansion.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

function fail(message) {
  process.stderr.write(`native/libtorch.js: ${message}\n`);
  process.exit(1);
}

function readIfExists(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** The libtorch's version from its headers: version.h, or torch/headeronly/version.h it includes in 2.x. */
function torchVersion(includeDir) {
  const candidates = ['torch/csrc/api/include/torch/version.h', 'torch/headeronly/version.h'].map((f) => path.join(includeDir, f));
  for (const file of candidates) {
    const text = readIfExists(file);
    const major = text && /#define\s+TORCH_VERSION_MAJOR\s+(\d+)/.exec(text);
    const minor = text && /#define\s+TORCH_VERSION_MINOR\s+(\d+)/.exec(text);
    const patch = text && /#define\s+TORCH_VERSION_PATCH\s+(\d+)/.exec(text);
    if (major && minor) return { major: Number(major[1]), minor: Number(minor[1]), patch: patch ? Number(patch[1]) : 0 };
  }
  fail(`no TORCH_VERSION_MAJOR in ${candidates.join(' or ')}: is ${includeDir} a libtorch include folder?`);
}

/**
 * The std::string ABI the libraries were built with: TorchConfig.cmake says so in 1.x and early 2.x;
 * otherwise libc10's symbols do (std::__cxx11 names exist only under the new ABI).
 */
function cxx11Abi(root, libDir) {
  const config = readIfExists(path.join(root, 'share/cmake/Torch/TorchConfig.cmake'));
  const stated = config && /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(config);
  if (stated) return stated[1];
  const lib = path.join(libDir, 'libc10.so');
  if (!fs.existsSync(lib)) fail(`${lib} is missing: LIBTORCH must hold lib/libc10.so`);
  return fs.readFileSync(lib).includes('St7__cxx11') ? '1' : '0';
}

/**
 * Whether this libtorch's CUDA half can load on this machine: it needs NVIDIA's cuBLAS, cuDNN, NCCL...
 * (beside it in a wheel's site-packages, or installed system-wide). Without them the addon links the
 * CPU half only and says so, rather than building a module that cannot be loaded.
 */
function cudaLinkable(libDir) {
  const lib = path.join(libDir, 'libtorch_cuda.so');
  if (!fs.existsSync(lib)) return { cuda: false, why: 'a CPU-only libtorch' };
  if (process.env.AVAP_TORCH_CUDA === '0') return { cuda: false, why: 'AVAP_TORCH_CUDA=0' };
  if (process.env.AVAP_TORCH_CUDA === '1') return { cuda: true };
  const ldd = spawnSync('ldd', [lib], { encoding: 'utf8' });
  const missing = (ldd.stdout || '').split('\n').filter((l) => l.includes('not found')).map((l) => l.trim().split(/\s/)[0]);
  if (ldd.status !== 0) return { cuda: false, why: `ldd ${lib} failed` };
  if (missing.length > 0) return { cuda: false, why: `its CUDA libraries are not installed here (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''})` };
  return { cuda: true };
}

/**
 * The folder holding gloo/ for distributed.cc (ProcessGroupGloo.hpp includes Gloo's headers, which a
 * PyTorch wheel does not ship): the libtorch's own, AVAP_GLOO_INCLUDE, or Debian's libgloo-dev in
 * /usr/include (searched by the compiler anyway: naming it with -I would reorder the system headers).
 */
function glooIncludes(includeDir) {
  if (fs.existsSync(path.join(includeDir, 'gloo/config.h'))) return [];
  const given = process.env.AVAP_GLOO_INCLUDE;
  if (given) {
    if (!fs.existsSync(path.join(given, 'gloo/config.h'))) fail(`AVAP_GLOO_INCLUDE=${given} has no gloo/config.h`);
    return [path.resolve(given)];
  }
  if (fs.existsSync('/usr/include/gloo/config.h')) return [];
  fail("no Gloo headers for the addon's collectives: install Debian's libgloo-dev (apt-get install libgloo-dev) or set AVAP_GLOO_INCLUDE to a folder holding gloo/");
}

/** The folders of `dir` (absolute), or none where it does not exist. */
function subfolders(dir) {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
  } catch {
    return [];
  }
}

/**
 * Where the CUDA runtime's and NCCL's headers are, for c10d's NCCL process group (nccl_backend.cc):
 * NVIDIA's wheels beside a wheel's torch/ (site-packages/nvidia/<library>/include; CUDA 13's wheels
 * put the runtime's in nvidia/cu13/include), CUDA_HOME, /usr/local/cuda, or /usr/include. Null, with
 * why, where either is missing: the addon then reduces GPU tensors through Gloo by way of the CPU.
 */
function ncclIncludes(root) {
  const candidates = [
    ...subfolders(path.join(fs.realpathSync(root), '..', 'nvidia')).map((d) => path.join(d, 'include')),
    ...(process.env.CUDA_HOME ? [path.join(process.env.CUDA_HOME, 'include')] : []),
    '/usr/local/cuda/include',
    '/usr/include',
  ].filter((d) => fs.existsSync(d));
  const holding = (header) => candidates.find((d) => fs.existsSync(path.join(d, header)));
  const missing = ['cuda_runtime_api.h', 'nccl.h'].filter((header) => !holding(header));
  if (missing.length > 0) return { dirs: null, why: `no ${missing.join(' or ')} found (pip install nvidia-nccl-cu13 beside torch, or set CUDA_HOME)` };
  // Every NVIDIA library's headers: ATen's CUDA headers include cuBLAS's, cuSPARSE's... as well.
  return { dirs: candidates.filter((d) => d !== '/usr/include'), why: null };
}

function describe() {
  const root = process.env.LIBTORCH || '';
  if (!root) {
    const include = '/usr/include';
    const version = torchVersion('/usr/include');
    return {
      version, std: 'c++17', abi: '1', cuda: false, nccl: false,
      includeDirs: ['/usr/include/torch/csrc/api/include', include],
      libraries: ['-ltorch', '-ltorch_cpu', '-lc10'],
    };
  }
  const resolved = path.resolve(root);
  const includeDir = path.join(resolved, 'include');
  const libDir = path.join(resolved, 'lib');
  if (!fs.existsSync(includeDir) || !fs.existsSync(libDir)) fail(`LIBTORCH=${root} has no include/ and lib/ folders (give a wheel's torch/ folder or an unpacked libtorch)`);
  const version = torchVersion(includeDir);
  if (version.major < 1 || (version.major === 1 && version.minor < 13)) fail(`LIBTORCH=${root} is libtorch ${version.major}.${version.minor}; avap needs 1.13 or later`);
  // libtorch refuses to compile below C++20 from 2.13 on; 1.x headers predate C++20 and are built as C++17.
  const std = version.major > 2 || (version.major === 2 && version.minor >= 13) ? 'c++20' : 'c++17';
  const { cuda, why } = cudaLinkable(libDir);
  const note = !cuda && fs.existsSync(path.join(libDir, 'libtorch_cuda.so')) ? `building without CUDA: ${why}` : null;
  // --no-as-needed: nothing in the addon names a CUDA symbol, so the linker would drop libtorch_cuda
  // and the CUDA backend would silently never register.
  const libraries = [`-L${libDir}`, `-Wl,-rpath,${libDir}`, '-Wl,--no-as-needed', '-ltorch_cpu', '-lc10',
    ...(cuda ? ['-ltorch', '-ltorch_cuda', '-lc10_cuda'] : []), '-Wl,--as-needed'];
  const nccl = cuda ? ncclIncludes(resolved) : { dirs: null, why: 'no CUDA' };
  const notes = [note, cuda && !nccl.dirs ? `building without NCCL, GPU collectives through Gloo: ${nccl.why}` : null].filter(Boolean);
  const includeDirs = [includeDir, path.join(includeDir, 'torch/csrc/api/include'), ...glooIncludes(includeDir), ...(nccl.dirs ?? [])];
  return { version, std, abi: cxx11Abi(resolved, libDir), cuda, nccl: Boolean(nccl.dirs), note: notes.join('; ') || null, includeDirs, libraries };
}

const BASE_SOURCES = ['src/addon.cc', 'src/tensor_handle.cc', 'src/ops_tensor.cc', 'src/ops_nn.cc', 'src/optimizer.cc', 'src/distributed.cc', 'src/device.cc'];

const field = process.argv[2];
const info = describe();
const fields = {
  std: () => `-std=${info.std}`,
  abi: () => `_GLIBCXX_USE_CXX11_ABI=${info.abi}`,
  includes: () => info.includeDirs.join(' '),
  // Said once per build: gyp reads this field once.
  libraries: () => {
    if (info.note) process.stderr.write(`native/libtorch.js: ${info.note}\n`);
    return info.libraries.join(' ');
  },
  version: () => `${info.version.major}.${info.version.minor}.${info.version.patch}`,
  cuda: () => (info.cuda ? '1' : '0'),
  // The addon's sources: c10d's NCCL process group where it can be built, its absence otherwise.
  sources: () => [...BASE_SOURCES, info.nccl ? 'src/nccl_backend.cc' : 'src/nccl_backend_absent.cc'].join(' '),
  // USE_C10D_NCCL: without it ProcessGroupNCCL.hpp compiles to nothing.
  defines: () => (info.nccl ? 'USE_C10D_NCCL' : ''),
  json: () => JSON.stringify(info),
};
if (!fields[field]) fail(`unknown field ${JSON.stringify(field)} (${Object.keys(fields).join(', ')})`);
process.stdout.write(fields[field]() + '\n');
