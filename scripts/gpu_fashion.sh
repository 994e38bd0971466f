#!/usr/bin/env bash
# The Fashion-MNIST experiment's GPU part, on the lent machine (offline; its python3 has torch, onnx,
# onnxruntime). Needs, ignored by git and carried: .gpu/site/pyautoattack/*.py (the package's code),
# .gpu/data/fashion-mnist/*.gz (Debian's files) and, for `cpu-artifact`, .gpu/work/{runs,artifacts}/fashion-mnist-cpu
# (the CPU-trained run and its artifact). Results come back as $OUT/PART.tgz (reports without their
# adversarial-example caches, metrics, summaries) and the logs.
#   bash scripts/gpu_fashion.sh full          # the fashion-mnist recipe: train, export, PGD-20 on 10,000, AutoAttack on 500
#   bash scripts/gpu_fashion.sh cpu-artifact  # fashion-mnist-cpu's artifact + its single-head baseline
set -u
cd "$(dirname "$0")/.."
G=$PWD/.gpu
export PYTHONPATH=$G/site:$PWD PYTHONUNBUFFERED=1
D=$G/data/fashion-mnist R=$G/work OUT=${OUT:-/tmp/out}
mkdir -p $R $OUT
nvidia-smi -L
python3 -c "import torch, onnxruntime, onnx, pyautoattack; print('torch', torch.__version__, 'ort', onnxruntime.__version__, 'onnx', onnx.__version__, torch.cuda.get_device_name())"
run() {  # run SECONDS LOG ARGS...: one bounded step of the experiment
  local limit=$1 log=$2; shift 2
  timeout "$limit" python3 scripts/fashion_experiment.py --root $R --data-dir $D --device cuda --batch-size 1000 "$@" \
    2>&1 | grep -v -E "it/s\]|s/it\]|^\[torch.onnx\]" > $OUT/$log; echo "$log: rc=${PIPESTATUS[0]}"; tail -3 $OUT/$log
}
case "${1:-}" in
  full)
    run 330 full_train.log --dhat fashion-mnist --baseline none --only train,export
    run 140 full_eval.log --dhat fashion-mnist --baseline none --only eval
    run 150 full_aa.log --dhat fashion-mnist --baseline none --aa-n 500 --only aa,summary ;;
  cpu-artifact)
    run 150 baseline.log --dhat none --baseline fashion-mnist-cpu-trades --aa-n 1000 --only train,export,eval,aa
    run 150 cpu_eval.log --dhat fashion-mnist-cpu --baseline fashion-mnist-cpu-trades --aa-n 1000 --only eval,aa,summary ;;
  *) echo "usage: $0 full|cpu-artifact"; exit 2 ;;
esac
tar czf $OUT/${1}.tgz -C $R --exclude=cache --exclude='*.safetensors' --exclude='*.onnx' experiments reports runs 2>&1 | tail -2
ls -la $OUT
