#!/usr/bin/env bash
# Brings a fresh Debian bookworm + Node 20 machine to a working avap, doing only what is missing:
# Debian's libtorch, pthreads OpenBLAS, Gloo's headers, Chromium (the viewer's browser test), nibabel (the NIfTI tests),
# PyTorch (torchrun, for its tests), the npm packages, the native addon, the TypeScript build (the library and the
# viewer's browser scripts).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[setup] $*" >&2; }

# libtorch falls back to reference BLAS (2.5x slower) unless the pthreads OpenBLAS is installed explicitly.
missing=()
if [ -z "${LIBTORCH:-}" ] && [ ! -f /usr/include/torch/csrc/api/include/torch/torch.h ]; then missing+=(libtorch-dev); fi
dpkg-query -W -f='${Status}' libopenblas0-pthread 2>/dev/null | grep -q 'install ok installed' || missing+=(libopenblas0-pthread)
# The headers of the Gloo that libtorch's distributed engine (c10d) links, for the addon's collectives.
if [ -z "${LIBTORCH:-}" ] && [ ! -f /usr/include/gloo/config.h ]; then missing+=(libgloo-dev); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The viewer's browser test drives Debian's Chromium (nothing downloads a browser of its own). Without
# it only that test is skipped, saying why, so a failed install does not stop the setup.
if [ -z "${AVAP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  log "installing Debian's chromium (for the viewer's browser test)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
    || log "could not install chromium: the browser test will be skipped"
fi

# The NIfTI tests compare against nibabel, the field's reference reader (never used at run time).
# Without it only those tests are skipped, saying why.
if ! /usr/bin/python3 -c 'import nibabel' >/dev/null 2>&1; then
  log "installing Debian's python3-nibabel (for the NIfTI tests)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-nibabel >/dev/null; } \
    || log "could not install python3-nibabel: the NIfTI cross-checks will be skipped"
fi

# torchrun for the tests that launch workers with it, and PyTorch for the benches' twin (bench/torch_avap.py):
# Debian's python3-torch, over the libtorch already installed (about 16 MB more to download). Without it
# only those tests are skipped, saying why.
if ! command -v torchrun >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  log "installing Debian's python3-torch (torchrun, for the torchrun tests and the benches' PyTorch twin)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch >/dev/null; } \
    || log "could not install python3-torch: the torchrun tests will be skipped"
fi

# onnxruntime-node's install script would fetch CUDA libraries from outside the npm registry; the CPU
# runtime it needs ships inside the package.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund >/dev/null
fi

# The addon is rebuilt when its sources changed or when LIBTORCH names another libtorch than the one it
# was built against (recorded beside it; a build without the record is Debian's).
addon=native/build/Release/avap_torch.node
built_for=native/build/libtorch
wanted=${LIBTORCH:+$(cd "$LIBTORCH" && pwd)}
if [ ! -f "$addon" ] || [ "$(cat "$built_for" 2>/dev/null)" != "$wanted" ] \
  || [ -n "$(find native -maxdepth 2 \( -name '*.cc' -o -name '*.h' -o -name binding.gyp -o -name libtorch.js \) -newer "$addon" 2>/dev/null)" ]; then
  log "building the native addon against ${wanted:-the Debian libtorch} (a few minutes the first time)"
  (cd native && JOBS=max npx --no-install node-gyp rebuild >/tmp/avap-native-build.log 2>&1) || { tail -40 /tmp/avap-native-build.log >&2; exit 1; }
  printf '%s' "$wanted" > "$built_for"
fi

npx --no-install tsc -p tsconfig.json
npx --no-install tsc -p src/viewer/tsconfig.json
