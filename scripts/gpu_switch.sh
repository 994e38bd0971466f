#!/usr/bin/env bash
# Issue 36's evidence on a lent GPU: scripts/switch_runs.sh (every switch design and every single-head alternative,
# trained, exported, PGD-20 on all 10,000 test images and the strong suite on the first STRONG_N, default the
# issue's 1,000, Square with AutoAttack's 5,000 queries) in one call bounded by a deadline, then packed.
#
#   bash scripts/gpu_switch.sh [SECONDS]                     # default 540: as much as fits
#   SEEDS="0" MODELS="fashion-mnist-cpu-trades-1" bash scripts/gpu_switch.sh 300   # a subset
#
# Carry (ignored by git): .gpu/site/pyautoattack (the package's code), .gpu/data/fashion-mnist (Debian's files)
# and, for a later call, .gpu/work from the earlier call's $OUT/switch-work.tgz (the runs a cut call leaves:
# training resumes from its last epoch, evaluations from their cached chunks, finished runs are reused).
# Results: $OUT/switch.tgz (experiments/: the per-image reports and the frontier, to commit) and
# $OUT/switch-work.tgz (runs, artifacts and reports with caches; about 7 MB a run, so carry it only while the
# 64 MiB a call carries holds it).
set -u
cd "$(dirname "$0")/.."
G=$PWD/.gpu R=$PWD/.gpu/work OUT=${OUT:-/tmp/out}
export PYTHONPATH=$G/site:$PWD PYTHONUNBUFFERED=1
mkdir -p $R $OUT
[ -d $R/experiments ] || cp -r experiments $R/experiments
PY=${PY:-python3} ROOT=$R DATA_DIR=$G/data/fashion-mnist DEVICE=${DEVICE:-cuda} STRONG_N=${STRONG_N:-1000} \
  SQUARE=${SQUARE:-5000} BATCH=${BATCH:-1000} DEADLINE=$(( $(date +%s) + ${1:-540} )) \
  bash scripts/switch_runs.sh 2>&1 | grep -v -E "it/s\]|s/it\]|^\[torch.onnx\]" > $OUT/switch.log
grep -E "rc=|no time left|Traceback|Error" $OUT/switch.log | tail -20
tar czf $OUT/switch.tgz -C $R experiments
tar czf $OUT/switch-work.tgz -C $R runs artifacts reports
ls -la $OUT
