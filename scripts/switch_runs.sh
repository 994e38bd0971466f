#!/usr/bin/env bash
# Issue 36's evidence, one run at a time (2 CPU cores: never two at once), resumable: every switch design and every
# alternative a user would deploy instead, at the fashion-mnist-cpu scale, trained, exported, PGD-20 on all 10,000
# test images and (STRONG_N > 0) the strong suite on the first STRONG_N; then the frontier of everything committed.
# Each call of fashion_experiment.py reuses what exists (a finished run, an artifact, a report) and a cut training
# run resumes from its last epoch, so this script can be killed and run again. Reports land in experiments/NAME/.
#
#   bash scripts/switch_runs.sh                       # seeds 0 1 2, PGD-20 only (about 9 h on 2 cores from nothing)
#   SEEDS="0" STRONG_N=100 bash scripts/switch_runs.sh  # one seed with the strong suite on 100 images
#   DEVICE=cuda STRONG_N=1000 bash scripts/switch_runs.sh  # on a GPU: the issue's 1,000 images
#   bash scripts/gpu_switch.sh [SECONDS]              # the same on a lent GPU, bounded by a deadline (see there)
#
# Settings (environment): SEEDS, STRONG_N, DEVICE, SQUARE (the strong suite's Square queries on the graph; 1000 here,
# AutoAttack's 5000 on a GPU), ROOT (where runs/, artifacts/, reports/, experiments/ go; default the repository),
# DATA_DIR (Debian's Fashion-MNIST when unset), BATCH (images per attack chunk), DEADLINE (epoch seconds: each run
# is cut 40 s before it and no run starts after it; a cut run resumes on the next call), MODELS (a subset, by recipe).
#
# The designs (DH-AT recipes, all three modes evaluated) and the single-head alternatives (main only); the
# equal-compute TRADES 1/lambda 6 head is fashion-mnist-cpu-trades (issue 29's baseline, already five seeds).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python} SEEDS=${SEEDS:-"0 1 2"} STRONG_N=${STRONG_N:-0} DEVICE=${DEVICE:-cpu} ROOT=${ROOT:-.}
DEADLINE=${DEADLINE:-0} MODELS=${MODELS:-}
DESIGNS="fashion-mnist-cpu-natural-trades fashion-mnist-cpu-robust-natural fashion-mnist-cpu-pgd2-trades"
DESIGNS="$DESIGNS fashion-mnist-cpu-natural-sat fashion-mnist-cpu-pgd2-sat"  # Table II's SAT variants
SINGLES="fashion-mnist-cpu-natural fashion-mnist-cpu-trades-1 fashion-mnist-cpu-trades-3"
phases=train,export,eval$([ "$STRONG_N" -gt 0 ] && echo ,strong)
common="--seeds SEED --aa-n 0 --adaptive-n 0 --strong-n $STRONG_N --square-queries ${SQUARE:-1000} --no-transfer"
common="$common --device $DEVICE --only $phases --root $ROOT ${DATA_DIR:+--data-dir $DATA_DIR} ${BATCH:+--batch-size $BATCH}"

run() {  # run DHAT BASELINE SEED: one recipe's run, skipped when MODELS leaves it out, cut at DEADLINE
  local recipe=${1/none/}${2/none/} limit=0
  [ -z "$MODELS" ] || [[ " $MODELS " == *" $recipe "* ]] || return 0
  if [ "$DEADLINE" -gt 0 ]; then
    limit=$(( DEADLINE - $(date +%s) - 40 ))
    [ "$limit" -gt 30 ] || { echo "$(date +%T) $recipe seed $3: no time left"; return 0; }
  fi
  timeout "$limit" $PY scripts/fashion_experiment.py --dhat $1 --baseline $2 ${common//SEED/$3}
  echo "$(date +%T) $recipe seed $3: rc=$?"
}
for seed in $SEEDS; do
  for single in $SINGLES; do run none $single $seed; done
  for design in $DESIGNS; do run $design none $seed; done
done
# The Fashion-MNIST frontier of everything committed at this scale (the README's picture and verdict), then the
# README's and docs' generated blocks (in the repository only).
# Run from ROOT, so the frontier names its reports by paths relative to it (experiments/...), wherever ROOT is.
py=$(realpath -s "$(command -v $PY)")
(cd "$ROOT" && $py -m dhat_serve.cli frontier experiments/fashion-mnist-cpu experiments/fashion-mnist-cpu-* \
  --out experiments/frontier-fashion --pair fashion-mnist-cpu-natural+fashion-mnist-cpu-trades)
[ "$ROOT" != . ] || $PY scripts/readme_numbers.py > /dev/null
