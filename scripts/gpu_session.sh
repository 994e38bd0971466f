#!/usr/bin/env bash
# One lent-GPU session in four short calls: the onnxruntime-gpu wheel (about 200 MB xz-packed) does not fit
# the 64 MiB a call carries, so it travels in pieces while issue 17's AutoAttack run works in the background.
#
#   bash scripts/gpu_session.sh start    # carry .gpu/data .gpu/site .gw0: copy the tree to /root/w, start
#                                        #   ONLY=full scripts/gpu_fashion.sh (issue 17) and the WRN-34-10 fp16
#                                        #   export for the serving check, both detached (setsid)
#   bash scripts/gpu_session.sh piece    # carry .gwN: keep the piece in /root/gw
#   bash scripts/gpu_session.sh serve    # carry the last .gwN: unpack onnxruntime-gpu and the serving wheels
#                                        #   into /root/ortlib, then benchmarks/gpu_oip.py (issues 19 and 20)
#   bash scripts/gpu_session.sh collect  # wait for the fashion run to end; its logs and reports to $OUT
#
# .gwN (ignored by git) is made here by: python3 -m pip download (py3.12 wheels of bentoml, tritonclient[grpc],
# grpcio, protobuf and what the machine lacks) into .gw0/deps, and the onnxruntime-gpu 1.31.1 wheel unzipped,
# tarred, xz-compressed and split into .gw0/ort.part0 .. .gw3/ort.part3 (`split -b`).
set -u
cd "$(dirname "$0")/.."
mkdir -p /root/gw
for d in .gw*; do [ -d "$d" ] && cp -r "$d"/. /root/gw/; done
case "$1" in
start)
  rm -rf /root/w && mkdir /root/w && tar cf - --exclude='./.gw*' . | tar xf - -C /root/w
  mkdir -p /root/o17 /root/ga
  (cd /root/w && setsid nohup bash -c 'OUT=/root/o17 ONLY=full LEVELS="500 1000 3000" BATCH=500 bash scripts/gpu_fashion.sh 560;
      touch /root/o17.done' > /root/o17/session.log 2>&1 < /dev/null &)
  (cd /root/w && setsid nohup env PYTHONPATH=/root/w python3 -c "from pathlib import Path; from benchmarks.common import \
random_artifact; random_artifact('wrn-34-10', Path('/root/ga/wrn-34-10-fp16'), fp16=True)" > /root/ga/export.log 2>&1 < /dev/null &)
  sleep 5; nvidia-smi -L; ls /root/gw; cat /root/o17/session.log ;;
piece) ls -la /root/gw ;;
serve)
  if [ ! -d /root/ortlib ]; then
    rm -rf /root/ortlib.tmp && mkdir -p /root/ortlib.tmp
    cat /root/gw/ort.part* | xz -d -T0 | tar xf - -C /root/ortlib.tmp || exit 1
    python3 -m pip install -q --no-index --no-deps --no-compile --target /root/ortlib.tmp /root/gw/deps/*.whl 2>&1 | tail -3
    mv /root/ortlib.tmp /root/ortlib
  fi
  export PYTHONPATH=/root/ortlib:$PWD PYTHONUNBUFFERED=1
  python3 -c "import onnxruntime as o, bentoml, tritonclient.grpc; print('ort', o.__version__, o.get_available_providers(), 'bentoml', bentoml.__version__)"
  [ -f /root/ga/wrn-34-10-fp16/manifest.json ] || python3 -c "from pathlib import Path; from benchmarks.common import \
random_artifact; random_artifact('wrn-34-10', Path('/root/ga/wrn-34-10-fp16'), fp16=True)" > /root/ga/export.log 2>&1
  tail -2 /root/ga/export.log
  timeout 330 python3 -m benchmarks.gpu_oip /root/ga/wrn-34-10-fp16 $OUT --workers 2 --concurrency 4 --seconds 5 2>&1 \
    | grep -v '^\[torch.onnx\]' | tail -12
  grep -E "worker [0-9]+, mode|warm-up|ERROR|Traceback" $OUT/gpu_service.log | cut -c1-220 | head -20
  tail -3 /root/o17/session.log ;;
collect)
  for i in $(seq 590); do [ -f /root/o17.done ] && break; sleep 1; done
  cat /root/o17/session.log
  tar czf $OUT/o17.tgz -C /root/o17 --exclude='*-model.tgz' . && ls -la /root/o17 ;;
esac
