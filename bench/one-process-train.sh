#!/usr/bin/env bash
# One-process `avap train` step rate of two builds, alternated: usage
#   bench/one-process-train.sh DATA OLD_MAIN_JS NEW_MAIN_JS [REPEATS]
# Steps/s of a run is (steps - 2) over the summed step times of steps 3..30 (the first two warm up).
# Last line: JSON with each build's steps/s per run, their means and new/old.
set -euo pipefail
data=$1 old=$2 new=$3 repeats=${4:-2}
export AVAP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE AVAP_CHECKPOINT_SECONDS=0
tmp=$(mktemp -d)
rate() {
  rm -rf "$tmp/run"
  node "$1" train --data "$data" --out "$tmp/run" --method mv-unet --size 128 --encoder resnet34 --batch-size 8 \
    --seed 3 --precision fp32 --val-fraction 0 --no-augment --steps 30 2>&1 >/dev/null \
    | awk '/^train step [0-9]+\/30:/ { split($3, s, "/"); if (s[1] > 2) { t += $(NF-1); n++ } } END { printf "%.4f", n / t }'
}
olds=() news=()
for i in $(seq 1 "$repeats"); do
  olds+=("$(rate "$old")"); echo "old run $i: $(printf %s "${olds[-1]}") steps/s" >&2
  news+=("$(rate "$new")"); echo "new run $i: $(printf %s "${news[-1]}") steps/s" >&2
done
rm -rf "$tmp"
python3 -c 'import json,sys; o=[float(x) for x in sys.argv[1].split()]; n=[float(x) for x in sys.argv[2].split()]; mo=sum(o)/len(o); mn=sum(n)/len(n); print(json.dumps({"old_steps_per_s": o, "new_steps_per_s": n, "old_mean": round(mo,4), "new_mean": round(mn,4), "new_over_old": round(mn/mo,3)}))' "${olds[*]}" "${news[*]}"
