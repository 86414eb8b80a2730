#!/usr/bin/env bash
# The GPU check, for a CUDA machine with PyTorch but without Node.js (in this project: an H200 with
# PyTorch 2.11 + CUDA 13 in /opt/torch/.venv). Prepare here with `bash scripts/gpu-pack.sh`, carry
# .gpu-pack with the working tree, then there, from the repository root:
#   bash scripts/gpu-check.sh
# It unpacks Node and the npm packages, builds the addon against that Python's torch (its torch/
# folder is a complete libtorch, CUDA and NCCL included), runs the device tests (c10d's NCCL group among
# them) and the CPU engine tests with it,
# then `bench:avap --device cuda` against the PyTorch twin at 256², batch 8 and batch 32: step 1, step 2,
# inference, predict's images/s and peak GPU memory. The last line printed is one JSON object. About
# 8 minutes on a 16-core machine (estimated): give the device call its 600 s.
# AVAP_GPU_PYTHON: the Python whose torch to use (default /opt/torch/.venv/bin/python); AVAP_TORCH: another
# torch/ folder to build against than that Python's.
# --cpu-rehearsal: the same steps without a GPU (--device cpu, a small bench), to try the pack out.
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
PACK=${AVAP_GPU_PACK:-.gpu-pack}
PY=${AVAP_GPU_PYTHON:-/opt/torch/.venv/bin/python}
rehearsal=0
[ "${1:-}" = "--cpu-rehearsal" ] && rehearsal=1
work=${TMPDIR:-/tmp}/avap-gpu-check
stage=pack
log() { echo "[gpu-check] $*" >&2; }
# One line saying what failed, then the JSON line, so the caller needs only the tail.
die() {
  log "$stage: $*"
  printf '{"ok":false,"stage":"%s","error":"%s","seconds":%d}\n' "$stage" "$(printf '%s' "$*" | tr '"\\\n' "'/ ")" $(($(date +%s) - started))
  exit 1
}

# ---- Node, the npm packages, dist/
[ -f "$PACK/node.xz" ] && [ -f "$PACK/pack.tar.xz" ] || die "no $PACK/node.xz and pack.tar.xz: run 'bash scripts/gpu-pack.sh' where Node is, and carry $PACK"
rm -rf "$work" && mkdir -p "$work/bin"
xz -dc "$PACK/node.xz" > "$work/bin/node" && chmod +x "$work/bin/node" || die "cannot unpack node"
tar -xJf "$PACK/pack.tar.xz" -C "$work" || die "cannot unpack $PACK/pack.tar.xz"
export PATH="$work/bin:$PATH"
node --version >/dev/null || die "the packed node does not run here"
[ -e node_modules ] || ln -s "$work/node_modules" node_modules
# A copy, not a link: dist/ finds bench/ and native/ relative to its real location.
rm -rf dist && cp -r "$work/dist" dist
export AVAP_GLOO_INCLUDE="$work/include"
export npm_config_nodedir="$work"
export npm_config_python="$PY"

# ---- PyTorch and the GPU
stage=torch
[ -x "$PY" ] || die "no Python at $PY: set AVAP_GPU_PYTHON to one with PyTorch"
info=$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__); print(torch.cuda.is_available()); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>/dev/null) \
  || die "$PY cannot import torch"
torch_dir=${AVAP_TORCH:-$(sed -n 1p <<<"$info")}; torch_version=$(sed -n 2p <<<"$info"); cuda=$(sed -n 3p <<<"$info"); gpu=$(sed -n 4p <<<"$info")
log "$PY: PyTorch $torch_version, GPU: $gpu; building against the libtorch in $torch_dir"
device=cuda
if [ "$cuda" != True ]; then
  [ $rehearsal = 1 ] || die "PyTorch $torch_version sees no GPU here (torch.cuda.is_available() is False); --cpu-rehearsal tries the rest on the CPU"
  device=cpu
fi

# ---- build the addon against it and run the tests with it
stage=tests
tests=(dist/test/gpu.test.js dist/test/device.test.js dist/test/torch-ops.test.js dist/test/torch-autograd.test.js dist/test/torch-nn.test.js dist/test/precision-layout.test.js)
limit=${AVAP_GPU_TEST_SECONDS:-420}
JOBS=max timeout "$limit" bash scripts/test-libtorch.sh "$torch_dir" "${tests[@]}" > "$work/tests.log" 2>&1
tests_rc=$?
grep -E '^\[test-libtorch\]|^not ok' "$work/tests.log" >&2
count() { sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$work/tests.log" | tail -1; }
pass=$(count pass); fail=$(count fail); skipped=$(count skipped)
if [ -z "$pass" ]; then
  tail -20 "$work/tests.log" build-libtorch/*/build.log 2>/dev/null >&2
  [ $tests_rc = 124 ] && die "building the addon and the tests took over $limit s (AVAP_GPU_TEST_SECONDS)"
  die "the addon did not build or load against PyTorch $torch_version (log above)"
fi
log "tests: $pass passed, $fail failed, $skipped skipped"
addon=$(sed -n 's/^\[test-libtorch\] loaded libtorch .* from \(.*\); CUDA built.*/\1/p' "$work/tests.log")
torch_version=$(sed -n 's/^\[test-libtorch\] loaded libtorch \([^ ]*\) from.*/\1/p' "$work/tests.log")
nccl=$(sed -n 's/^\[test-libtorch\] loaded .*NCCL built: \([a-z]*\).*/\1/p' "$work/tests.log")
export AVAP_ADDON="$PWD/$addon"

# ---- bench:avap against the PyTorch twin, alternating: batch 8 and batch 32 at 256²
stage=bench
export AVAP_BENCH_PYTHON="$PY"
bench() {  # batch size, then extra flags; prints the bench's JSON line
  timeout "${AVAP_GPU_BENCH_SECONDS:-240}" node dist/bench/avap.js --device "$device" --batch "$1" "${@:2}" > "$work/bench-$1.log" 2>&1 || { tail -5 "$work/bench-$1.log" >&2; return 1; }
  grep -v '^{' "$work/bench-$1.log" >&2
  tail -1 "$work/bench-$1.log"
}
if [ $device = cuda ]; then
  # One round each: every worker process starts CUDA anew (seconds each), and the whole check must stay
  # well inside the 10 minutes a device call may run.
  b8=$(bench 8 --rounds 1 --steps 5 --warmup 3 --reps 10 --ms 6) || die "bench:avap --device cuda at batch 8 failed (log above)"
  b32=$(bench 32 --rounds 1 --steps 5 --warmup 3 --reps 5 --ms 6) || die "bench:avap --device cuda at batch 32 failed (log above)"
else
  b8=$(bench 2 --size 64 --rounds 1 --steps 1 --warmup 1 --reps 1 --ms 2) || die "bench:avap (rehearsal) failed (log above)"
  b32=null
fi

stage=done
node -e '
  const [b8, b32] = [process.argv[1], process.argv[2]].map((s) => JSON.parse(s));
  const pick = (b) => b && ({ batch: b.batch, size: b.size, train_precision: b.train_precision, step1_ms: b.step1_ms, step2_ms: b.step2_ms, infer_ms: b.infer_ms,
    predict_images_per_s: b.predict.images_per_s, peak_gpu_mb: b.peak_gpu_mb ?? null, init_identical_to_torch: b.init_identical_to_torch });
  const [pass, fail, skipped] = process.argv.slice(3, 6).map(Number);
  console.log(JSON.stringify({ ok: fail === 0 && Number(process.argv[9]) === 0, device: process.argv[6], torch: process.argv[7], gpu: process.argv[8],
    nccl: process.argv[11] === "true", tests: { pass, fail, skipped }, bench: { batch8: pick(b8), batch32: pick(b32) }, seconds: Number(process.argv[10]) }));
' "$b8" "$b32" "$pass" "$fail" "$skipped" "$device" "$torch_version" "$gpu" "$tests_rc" $(($(date +%s) - started)) "${nccl:-false}"
