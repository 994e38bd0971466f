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
#
# The designs (DH-AT recipes, all three modes evaluated) and the single-head alternatives (main only); the
# equal-compute TRADES 1/lambda 6 head is fashion-mnist-cpu-trades (issue 29's baseline, already five seeds).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python} SEEDS=${SEEDS:-"0 1 2"} STRONG_N=${STRONG_N:-0} DEVICE=${DEVICE:-cpu}
DESIGNS="fashion-mnist-cpu-natural-trades fashion-mnist-cpu-robust-natural fashion-mnist-cpu-pgd2-trades"
DESIGNS="$DESIGNS fashion-mnist-cpu-natural-sat fashion-mnist-cpu-pgd2-sat"  # Table II's SAT variants
SINGLES="fashion-mnist-cpu-natural fashion-mnist-cpu-trades-1 fashion-mnist-cpu-trades-3"
phases=train,export,eval$([ "$STRONG_N" -gt 0 ] && echo ,strong)
common="--seeds SEED --aa-n 0 --adaptive-n 0 --strong-n $STRONG_N --square-queries ${SQUARE:-1000} --no-transfer"
common="$common --device $DEVICE --only $phases"
for seed in $SEEDS; do
  for single in $SINGLES; do
    $PY scripts/fashion_experiment.py --dhat none --baseline $single ${common//SEED/$seed}
  done
  for design in $DESIGNS; do
    $PY scripts/fashion_experiment.py --dhat $design --baseline none ${common//SEED/$seed}
  done
done
# The Fashion-MNIST frontier of everything committed at this scale (the README's picture and verdict), then the
# README's and docs' generated blocks.
$PY -m dhat_serve.cli frontier experiments/fashion-mnist-cpu experiments/fashion-mnist-cpu-* \
  --out experiments/frontier-fashion --pair fashion-mnist-cpu-natural+fashion-mnist-cpu-trades
$PY scripts/readme_numbers.py > /dev/null
