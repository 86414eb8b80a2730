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
dir=build-libtorch/$version
mkdir -p "$dir/src"
# cp -p keeps the sources' times, so make rebuilds only what changed since the last run.
cp -p native/binding.gyp native/libtorch.js "$dir/"
cp -p native/src/* "$dir/src/"
addon=$dir/build/Release/avap_torch.node
if [ ! -f "$dir/build/Makefile" ] || [ "$dir/binding.gyp" -nt "$dir/build/Makefile" ] || [ "$(cat "$dir/libtorch" 2>/dev/null)" != "$libtorch" ]; then
  log "configuring the addon for libtorch $version at $libtorch"
  (cd "$dir" && LIBTORCH="$libtorch" npx --no-install node-gyp configure >"$PWD/configure.log" 2>&1) || { tail -20 "$dir/configure.log" >&2; exit 1; }
  echo "$libtorch" > "$dir/libtorch"
fi
log "building the addon against libtorch $version into $dir (minutes the first time)"
(cd "$dir" && LIBTORCH="$libtorch" JOBS=${JOBS:-max} npx --no-install node-gyp build >"$PWD/build.log" 2>&1) || { grep -m5 -A3 'error' "$dir/build.log" >&2 || tail -30 "$dir/build.log" >&2; exit 1; }
export AVAP_ADDON=$PWD/$addon
node -e "const t = require('./dist/src/torch'); console.error('[test-libtorch] loaded libtorch ' + t.torchVersion() + ' from $addon; CUDA built: ' + t.deviceSupport().cudaBuilt + ', GPUs: ' + t.deviceSupport().cudaDevices)"

npx --no-install tsc -p tsconfig.json
if [ $# -eq 0 ]; then set -- dist/test/; fi
OMP_WAIT_POLICY=PASSIVE node --test --test-concurrency=1 "$@"
