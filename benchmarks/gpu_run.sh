#!/usr/bin/env bash
# On the lent GPU machine (offline, Python 3.12 with torch): install onnxruntime-gpu + bentoml from
# carried wheels into a venv layered over the system packages, then run benchmarks/gpu_ort.py and the
# service against the WRN-34-10 artifact with the CUDA provider. Output under $OUT.
set -u
cd "$(dirname "$0")/.."
W=${WHEELS:-/root/gw}
# a --target directory in front of the machine's own packages (torch, numpy stay the machine's)
if [ ! -d /root/ortlib/onnxruntime ]; then
  cat $W/gwpart* > /root/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
  tar -C /root -xf $W/deps.tar
  python3 -m pip install -q --no-index --no-deps --target /root/ortlib \
    /root/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl /root/gpudeps/*.whl 2>&1 | tail -3
fi
PY=python3
export PYTHONPATH=/root/ortlib:$PWD
$PY -c "import onnxruntime as o; o.preload_dlls(); print(o.__version__, o.get_available_providers())"
$PY benchmarks/gpu_ort.py /root/gpu-artifacts 2>&1 | grep -v "^\[torch.onnx\]" | tail -8 | tee $OUT/gpu_ort.txt
# the service itself on the GPU: provider per session from its log, then /predict throughput
export DHAT_ARTIFACT=/root/gpu-artifacts/wrn-34-10-fp32 DHAT_PROVIDER=cuda DHAT_MAX_REQUEST_BYTES=67108864
$PY -m bentoml serve dhat_serve.service:DHAT --port 3999 > $OUT/service.log 2>&1 &
for i in $(seq 120); do curl -sf localhost:3999/readyz >/dev/null && break; sleep 1; done
$PY benchmarks/gpu_service_load.py http://127.0.0.1:3999 | tee $OUT/gpu_service.txt
grep "runs on" $OUT/service.log
kill %1
