#!/usr/bin/env bash
# The GPU part of the Fashion-MNIST experiment (issue 17) and the fp32-vs-bf16 stage-1 benchmark (issue 18),
# as one call bounded by a deadline, for the lent GPU machine (offline; its python3 has torch, onnx and an
# onnxruntime without a CUDA provider, so the graphs are scored on its CPU provider).
#
#   bash scripts/gpu_fashion.sh [SECONDS]   # default 560: everything below, stopping cleanly at the deadline
#
# Needs, ignored by git and carried: .gpu/site/pyautoattack/*.py (the package's code), .gpu/data/fashion-mnist
# (Debian's files) and .gpu/work/{runs,artifacts}/{fashion-mnist-cpu,fashion-mnist-cpu-trades} (the CPU-trained
# runs and artifacts). Steps, in order of value:
#   1. benchmarks/gpu_stage1_epoch.py: cifar10-trades-6-3's stage-1 loop, fp32 then bf16 (synthetic images)
#   2. train `fashion-mnist` (WRN-16-4, 28x28) while AutoAttack runs on the CPU recipe's artifacts
#   3. export, PGD-20 on all 10,000 test images, then AutoAttack on the fashion-mnist artifact
# AutoAttack runs in growing levels (LEVELS, first N test images); the chunks of 1,000 a level attacked are
# cached, so the next level only attacks the new ones, and the largest level that finished before the
# deadline is the one kept (reports/R/autoattack/report.json; each level's also as report-nN.json).
# Results come back as $OUT/gpu.tgz (reports without their adversarial-example caches, metrics, walls) + logs.
# ONLY=full: only the full recipe (train, PGD-20, AutoAttack levels); ONLY=full-aa: a later call on the same warm
# machine (or with an earlier call's $NAME-model.tgz extracted into .gpu/work) finishes what is left: the PGD-20
# chunks a deadline cut, then the AutoAttack levels (cached chunks of BATCH images are reused, so keep BATCH).
# ONLY=cpu-aa BATCH=500 LEVELS="500 1000": only AutoAttack on the CPU recipe's artifact (a short second call).
# PREC=tf32: craft every attack with TF32 convolutions (`dhat eval --attack-precision tf32`; scores stay fp32).
# For a dry run on a CPU: PY=.venv/bin/python DEVICE=cpu FULL=/tmp/tiny.yaml LEVELS="20 40" BENCH=0 ...
set -u
cd "$(dirname "$0")/.."
G=$PWD/.gpu
export PYTHONPATH=$G/site:$PWD PYTHONUNBUFFERED=1
D=$G/data/fashion-mnist R=$G/work OUT=${OUT:-/tmp/out}
PY=${PY:-python3} DEVICE=${DEVICE:-cuda} FULL=${FULL:-fashion-mnist} LEVELS=${LEVELS:-"1000 3000 10000"}
CPU=fashion-mnist-cpu BASE=fashion-mnist-cpu-trades
DEADLINE=$(( $(date +%s) + ${1:-560} ))
mkdir -p $R $OUT

left() { echo $(( DEADLINE - $(date +%s) - ${1:-0} )); }  # seconds to the deadline, minus a reserve

experiment() {  # experiment LOG LIMIT ARGS...: one bounded call of scripts/fashion_experiment.py
  local log=$1 limit=$2; shift 2
  [ "$limit" -gt 0 ] || { echo "$(date +%T) $log $*: skipped, the deadline has passed"; return; }  # timeout 0 = none
  timeout "$limit" $PY scripts/fashion_experiment.py --root $R --data-dir $D --device $DEVICE --batch-size ${BATCH:-1000} \
    --attack-precision ${PREC:-fp32} "$@" \
    2>&1 | grep -v -E "it/s\]|s/it\]|^\[torch.onnx\]" >> $OUT/$log
  echo "$(date +%T) $log $*: rc=${PIPESTATUS[0]}"
}

autoattack_levels() {  # autoattack_levels NAME RESERVE ARGS...: AutoAttack on growing first-N levels until the deadline
  local name=$1 reserve=$2; shift 2
  local dir=$R/reports/$name/autoattack kept=""
  for n in $LEVELS; do
    local limit; limit=$(left "$reserve")
    [ "$limit" -gt 30 ] || break
    rm -f $dir/report.json
    experiment aa_$name.log "$limit" "$@" --aa-n "$n" --only aa
    [ -f $dir/report.json ] || break
    cp $dir/report.json $dir/report-n$n.json; cp $dir/report.md $dir/report-n$n.md; kept=$n
  done
  [ -n "$kept" ] && cp $dir/report-n$kept.json $dir/report.json
  echo "$(date +%T) AutoAttack on $name: largest finished level ${kept:-none}"
}

$PY -c "import torch, onnxruntime, onnx, pyautoattack; print('torch', torch.__version__, 'ort', onnxruntime.__version__, \
'onnx', onnx.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
NAME=$(basename $FULL .yaml)
pack() {  # reports and metrics; and the full recipe's trained model, so a later call can attack it without retraining
  tar czf $OUT/gpu.tgz -C $R --exclude=cache --exclude='*.safetensors' --exclude='*.onnx' reports runs
  [ -f $R/artifacts/$NAME/manifest.json ] && tar czf $OUT/$NAME-model.tgz -C $R artifacts/$NAME runs/$NAME/recipe.yaml \
    runs/$NAME/metrics.jsonl $(cd $R && ls -d runs/$NAME/stage3/best 2>/dev/null)
  ls -la $OUT
}
case "${ONLY:-}" in  # short later calls: AutoAttack alone on carried artifacts (extract $NAME-model.tgz into .gpu/work)
  cpu-aa) autoattack_levels $CPU 10 --dhat $CPU --baseline none; pack; exit ;;
  full-aa)
    experiment full_eval.log "$(left 120)" --dhat $FULL --baseline none --only eval --no-transfer  # no-op when done
    autoattack_levels $NAME 10 --dhat $FULL --baseline none; pack; exit ;;
  full)  # the GPU recipe alone: train, PGD-20 on 10,000 (paired), then AutoAttack in levels until the deadline
    # (one after the other: run 3 put them side by side and AutoAttack did not finish 500 images in 320 s,
    # where alone it attacks 100 in about 40 s per mode)
    experiment full_train.log "$(left 300)" --dhat $FULL --baseline none --only train,export
    experiment full_eval.log "$(left 150)" --dhat $FULL --baseline none --only eval --no-transfer
    autoattack_levels $NAME 15 --dhat $FULL --baseline none > $OUT/levels_full.log; pack; exit ;;
esac
if [ "${BENCH:-1}" = 1 ]; then  # 1. alone on the machine, so its two figures are comparable
  timeout 150 $PY -m benchmarks.gpu_stage1_epoch --precision fp32,bf16 --images 6400 --device $DEVICE 2>&1 \
    | grep -v "it/s\]" | tee $OUT/stage1_precision.jsonl
fi
# 2. the full recipe trains while the CPU recipe's artifacts are attacked (the GPU has room for both)
experiment full_train.log "$(left 150)" --dhat $FULL --baseline none --only train,export &
autoattack_levels $CPU 220 --dhat $CPU --baseline none > $OUT/levels_cpu.log &
autoattack_levels $BASE 220 --dhat none --baseline $BASE > $OUT/levels_base.log &
wait
cat $OUT/levels_*.log
# 3. the full recipe's evaluation: PGD-20 on all 10,000 (paired intervals need report.json), then AutoAttack
experiment full_eval.log "$(left 60)" --dhat $FULL --baseline none --only eval --no-transfer
autoattack_levels $NAME 15 --dhat $FULL --baseline none
pack
