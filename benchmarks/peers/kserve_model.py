"""The minimal KServe model ``bench_peers`` serves ``merged.onnx`` with (KServe 0.21.0's Python ``ModelServer``).

What a user of KServe's Python server would write: one ``kserve.Model`` that opens an ONNX Runtime session
with the service's settings (CPU, ``DHAT_PEER_THREADS`` intra-op threads, spinning off) and answers
``logits`` as the request asked (binary or JSON, per output). KServe's Python server has no batching (the
InferenceService ``batcher`` is a Go sidecar's), so one request is one ``session.run``. Its per-request log
lines (latency, access log) are turned down to WARNING, as a production user would.

Usage (what ``bench_peers`` runs): python kserve_model.py --model merged --onnx PATH --http_port P --grpc_port Q
"""

from __future__ import annotations

import argparse
import logging
import os

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.utils.utils import generate_uuid


class OnnxModel(Model):
    """``images`` (N, C, H, W) float32 in, ``logits`` (N, classes) float32 out."""

    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("DHAT_PEER_THREADS", "2"))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(self.path, sess_options=options, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    async def predict(
        self, payload: InferRequest, headers: dict | None = None, response_headers: dict | None = None
    ) -> InferResponse:
        images = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        (logits,) = self.session.run(["logits"], {"images": images})
        output = InferOutput(name="logits", shape=list(logits.shape), datatype="FP32")
        output.set_data_from_numpy(logits, binary_data=False)  # the response encoder re-sets it as asked
        # KServe's JSON response model needs a string id; a request without one gets a fresh one
        return InferResponse(
            response_id=payload.id or generate_uuid(),
            model_name=self.name,
            infer_outputs=[output],
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)  # KServe's own flags (--http_port ...) are its parser's
    parser.add_argument("--model", default="merged")
    parser.add_argument("--onnx", required=True)
    args, _ = parser.parse_known_args()
    server = ModelServer(workers=1, enable_latency_logging=False)
    for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.access", "uvicorn.error", ""):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([OnnxModel(args.model, args.onnx)])
