#!/usr/bin/env bash
# Evidence across training runs on a lent GPU (issues 29, 35): SEEDS of a DH-AT recipe and its single-head baseline,
# each trained, exported, PGD-20 on all 10,000 test images and the strong suite (AutoAttack standard, margin, system,
# evade, Square, transfer) on the first STRONG_N, one call bounded by a deadline that resumes where a cut call left it
# (training resumes from its last epoch, evaluations from their cached chunks, finished seeds are reused), then the
# across-seed summary with the primary endpoint merged - main under the strong suite's per-image worst case.
#
#   bash scripts/gpu_seeds.sh [SECONDS]            # default 540: as much as fits, then pack the results
#   DHAT=fashion-mnist BASE=none bash scripts/gpu_seeds.sh   # the GPU recipe (it has no baseline recipe yet)
#
# Carry (ignored by git): .gpu/site/pyautoattack (the package's code), .gpu/data/fashion-mnist (Debian's files) and,
# for a later call, .gpu/work from the earlier call's $OUT/seeds-work.tgz (runs and caches: what makes it resume).
# Results: $OUT/seeds.tgz (experiments/ summaries and every report.json, per-image results included) and
# $OUT/seeds-work.tgz (runs, artifacts, reports with caches) to carry into the next call.
set -u
cd "$(dirname "$0")/.."
G=$PWD/.gpu
export PYTHONPATH=$G/site:$PWD PYTHONUNBUFFERED=1
R=$G/work OUT=${OUT:-/tmp/out} PY=${PY:-python3} DEVICE=${DEVICE:-cuda}
DHAT=${DHAT:-fashion-mnist-cpu} BASE=${BASE:-fashion-mnist-cpu-trades} SEEDS=${SEEDS:-"0 1 2 3 4"} STRONG_N=${STRONG_N:-1000}
DEADLINE=$(( $(date +%s) + ${1:-540} ))
mkdir -p $R $OUT
[ -d $R/experiments ] || cp -r experiments $R/experiments

left() { echo $(( DEADLINE - $(date +%s) - 40 )); }  # 40 s kept for the summary and the packing

for seed in $SEEDS; do
  limit=$(left)
  [ "$limit" -gt 30 ] || { echo "$(date +%T) seed $seed: no time left"; break; }
  timeout "$limit" $PY scripts/fashion_experiment.py --root $R --data-dir $G/data/fashion-mnist --device $DEVICE \
    --dhat $DHAT --baseline $BASE --seeds $seed --aa-n 0 --strong-n $STRONG_N --adaptive-n 0 --batch-size ${BATCH:-1000} \
    --attack-precision ${PREC:-fp32} --primary merged-main@worst-case --only train,export,eval,strong \
    2>&1 | grep -v -E "it/s\]|s/it\]|^\[torch.onnx\]" >> $OUT/seeds.log
  echo "$(date +%T) seed $seed: rc=${PIPESTATUS[0]}"
done
all=$(echo $SEEDS | tr ' ' ',')
$PY scripts/fashion_experiment.py --root $R --dhat $DHAT --baseline $BASE --seeds "$all" --primary merged-main@worst-case \
  --only summary >> $OUT/seeds.log 2>&1
tar czf $OUT/seeds.tgz -C $R experiments $(cd $R && ls -d reports/*/*/report.json 2>/dev/null)
tar czf $OUT/seeds-work.tgz -C $R runs artifacts reports
ls -la $OUT
