#!/usr/bin/env bash
# How the digits recipe's merger 1/lambda was chosen: on the validation split only (270 images held out of the
# training images; the test images are never looked at). One run's stages 1 and 2 are copied, stage 3 is trained
# with each candidate, and the best-epoch validation PGD-10 accuracy of each is printed.
#   bash scripts/digits_merger_sweep.sh runs/digits     # a finished `dhat train digits` run
set -eu
RUN=${1:?usage: $0 RUN_DIR (a finished digits run)}
cd "$(dirname "$0")/.."
for beta in 2 3 6; do
  out=${TMPDIR:-/tmp}/digits-merger-beta$beta
  rm -rf "$out" && mkdir -p "$out"
  cp -r "$RUN/stage1" "$RUN/stage2" "$out/"
  grep -v '"stage": 3' "$RUN/metrics.jsonl" > "$out/metrics.jsonl"
  .venv/bin/dhat train digits --out "$out" --stage 3 stage3.beta=$beta > "$out.log" 2>&1
  python3 -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1]) if '\"stage\": 3' in l]; \
b=max(rows, key=lambda r: r['val_robust']); print(f\"1/lambda={sys.argv[2]}: best val PGD-10 {100*b['val_robust']:.2f} % \
(clean {100*b['val_clean']:.2f} %) at merger epoch {b['epoch']}\")" "$out/metrics.jsonl" $beta
done
