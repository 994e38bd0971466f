"""The minimal MLServer runtime ``bench_peers`` serves ``merged.onnx`` with (MLServer 1.7.1, its own venv).

What a user of MLServer would write for an ONNX model: one ``MLModel`` that opens an ONNX Runtime session
with the service's settings (CPU, ``DHAT_PEER_THREADS`` intra-op threads, spinning off) and answers
``logits``. Batching is MLServer's own adaptive batching (``max_batch_size`` / ``max_batch_time`` in the
``model-settings.json`` that ``bench_peers`` writes). Imports only MLServer, NumPy and ONNX Runtime.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):
    """``images`` (N, C, H, W) float32 in, ``logits`` (N, classes) float32 out, one ``session.run`` per batch."""

    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("DHAT_PEER_THREADS", "2"))
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        uri = self.settings.parameters.uri
        self.session = ort.InferenceSession(uri, sess_options=options, providers=["CPUExecutionProvider"])
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        (logits,) = self.session.run(["logits"], {"images": images})
        return InferenceResponse(
            model_name=self.name, id=payload.id, outputs=[NumpyCodec.encode_output("logits", logits)]
        )
