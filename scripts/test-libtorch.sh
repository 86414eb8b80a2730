#!/usr/bin/env bash
# Builds the addon against another libtorch and runs the test suite with it, on the CPU:
#   bash scripts/test-libtorch.sh /path/to/torch [test files...]
# /path/to/torch is a PyTorch wheel's torch/ folder (site-packages/torch) or an unpacked libtorch zip.
# The build goes to build-libtorch/<version>/ (native/build, the default Debian build, stays as it is);
# the tests load it through AVAP_ADDON. Without test files the whole suite runs. A libtorch whose CUDA
# libraries are not installed here is linked without CUDA (native/libtorch.js says so).
set -euo pipefail
cd "$(dirname "$0")/.."
libtorch=${1:?usage: bash scripts/test-libtorch.sh /path/to/torch [dist/test/X.test.js ...]}
shift
libtorch=$(cd "$libtorch" && pwd)
log() { echo "[test-libtorch] $*" >&2; }

version=$(LIBTORCH="$libtorch" node native/libtorch.js version 2>/dev/null) || { LIBTORCH="$libtorch" node native/libtorch.js version; exit 1; }
# One build per libtorch version and flavour: a wheel's CPU half and its CUDA build do not share objects.
flavour=$(LIBTORCH="$libtorch" node native/libtorch.js cuda 2>/dev/null)
dir=build-libtorch/$version$([ "$flavour" = 1 ] && echo -cuda)
mkdir -p "$dir/src"
# cp -p keeps the sources' times, so make rebuilds only what changed since the last run.
cp -p native/binding.gyp native/libtorch.js "$dir/"
cp -p native/src/* "$dir/src/"
addon=$dir/build/Release/avap_torch.node
gyp=$PWD/node_modules/.bin/node-gyp
# Node's own headers where Node is installed with them (/usr on Debian), so node-gyp downloads nothing.
if [ -z "${npm_config_nodedir:-}" ]; then
  node_prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  [ -f "$node_prefix/include/node/node_api.h" ] && export npm_config_nodedir=$node_prefix
fi
if command -v make >/dev/null; then
  # Configured for this libtorch, node-gyp and Node headers (a build folder carried elsewhere is not).
  configured="$libtorch $gyp ${npm_config_nodedir:-}"
  if [ ! -f "$dir/build/Makefile" ] || [ "$dir/binding.gyp" -nt "$dir/build/Makefile" ] || [ "$(cat "$dir/configured" 2>/dev/null)" != "$configured" ]; then
    log "configuring the addon for libtorch $version at $libtorch"
    (cd "$dir" && LIBTORCH="$libtorch" "$gyp" configure >"$PWD/configure.log" 2>&1) || { tail -20 "$dir/configure.log" >&2; exit 1; }
    echo "$configured" > "$dir/configured"
  fi
  log "building the addon against libtorch $version into $dir (minutes the first time)"
  (cd "$dir" && LIBTORCH="$libtorch" JOBS=${JOBS:-max} "$gyp" build >"$PWD/build.log" 2>&1) || { grep -m5 -A3 'error' "$dir/build.log" >&2 || tail -30 "$dir/build.log" >&2; exit 1; }
else
  # No make (node-gyp's Linux generator): the same flags, from native/libtorch.js, straight to g++.
  log "building the addon against libtorch $version into $dir with g++ (no make here)"
  mkdir -p "$dir/build/Release/obj"
  export LIBTORCH=$libtorch
  flags="$(node "$dir/libtorch.js" std) -D$(node "$dir/libtorch.js" abi) -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DUSE_C10D_GLOO -DBUILDING_NODE_EXTENSION
    -fPIC -fexceptions -frtti -O2 -Wno-deprecated-declarations -I$(node -p "require('node-addon-api').include_dir") -I${npm_config_nodedir:-/usr}/include/node"
  for d in $(node "$dir/libtorch.js" defines); do flags="$flags -D$d"; done
  for i in $(node "$dir/libtorch.js" includes); do flags="$flags -I$i"; done
  rm -f "$dir"/build/Release/obj/*.o
  (cd "$dir" && node libtorch.js sources) | tr ' ' '\n' | xargs -P "$(nproc)" -I{} sh -c "g++ $flags -c $dir/{} -o $dir/build/Release/obj/\$(basename {} .cc).o" 2>"$dir/build.log" || { grep -m5 -A3 'error' "$dir/build.log" >&2; exit 1; }
  g++ -shared -o "$addon" "$dir"/build/Release/obj/*.o $(node "$dir/libtorch.js" libraries 2>/dev/null) || exit 1
  unset LIBTORCH
fi
export AVAP_ADDON=$PWD/$addon
node -e "const t = require('./dist/src/torch'); const s = t.deviceSupport(); console.error('[test-libtorch] loaded libtorch ' + t.torchVersion() + ' from $addon; CUDA built: ' + s.cudaBuilt + ', NCCL built: ' + s.ncclBuilt + ', GPUs: ' + s.cudaDevices)"

# Where TypeScript is not installed (scripts/gpu-check.sh's machine), dist/ comes compiled.
if [ -e node_modules/typescript ]; then npx --no-install tsc -p tsconfig.json; fi
if [ $# -eq 0 ]; then set -- dist/test/; fi
OMP_WAIT_POLICY=PASSIVE node --test --test-concurrency=1 "$@"
