#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that has PyTorch but no Node.js, into
# .gpu-pack/ (ignored by git), to be carried there with the working tree (64 MiB at most):
#   node.xz      this machine's Node binary, xz-compressed
#   pack.tar.xz  Node's N-API headers (node-gyp --nodedir), Gloo's headers (a PyTorch wheel has none),
#                the compiled dist/, and the npm packages the CLI, the tests and the build use
#                (not onnxruntime, playwright or typescript: the GPU check needs none of them)
# Usage: bash scripts/gpu-pack.sh   (then carry .gpu-pack and run bash scripts/gpu-check.sh there)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-pack
limit=$((64 * 1024 * 1024))
log() { echo "[gpu-pack] $*" >&2; }

node_bin=$(command -v node)
node_headers=$(dirname "$(dirname "$(readlink -f "$node_bin")")")/include/node
[ -f "$node_headers/node_api.h" ] || { log "no Node headers at $node_headers (node_api.h)"; exit 1; }
[ -f /usr/include/gloo/config.h ] || { log "no Gloo headers in /usr/include/gloo: apt-get install libgloo-dev"; exit 1; }
modules=$(readlink -f node_modules)
[ -d "$modules/node-gyp" ] || { log "node_modules lacks node-gyp: run npm ci"; exit 1; }

log "compiling the TypeScript (dist/)"
npx --no-install tsc -p tsconfig.json

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/include/node" "$stage/include/gloo"
# N-API needs only these; common.gypi and config.gypi are what node-gyp reads from a --nodedir.
for f in common.gypi config.gypi node_version.h node_api.h node_api_types.h js_native_api.h js_native_api_types.h; do
  [ -f "$node_headers/$f" ] && cp "$node_headers/$f" "$stage/include/node/"
done
cp -r /usr/include/gloo/. "$stage/include/gloo/"
cp -r dist "$stage/dist"
mkdir -p "$stage/node_modules"
tar -C "$modules" --exclude=./onnxruntime-node --exclude=./onnxruntime-web --exclude=./playwright-core --exclude=./typescript --exclude=./@types -cf - . \
  | tar -C "$stage/node_modules" -xf -

rm -rf "$out"
mkdir -p "$out"
log "compressing node ($(du -h "$(readlink -f "$node_bin")" | cut -f1)) and the rest (a minute or two)"
xz -T0 -6 -c "$(readlink -f "$node_bin")" > "$out/node.xz" &
tar -C "$stage" -cf - . | xz -T0 -6 > "$out/pack.tar.xz"
wait
node -p "process.version" > "$out/node-version"
bytes=$(du -cb "$out"/* | tail -1 | cut -f1)
log "$out: $((bytes / 1024 / 1024)) MiB of the $((limit / 1024 / 1024)) MiB a device call may carry"
[ "$bytes" -lt "$limit" ] || { log "too large to carry"; exit 1; }
