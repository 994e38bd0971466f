"""What the Open Inference Protocol says about its models, for the REST routes and the gRPC service alike.

Its models are the request modes (``main``, ``second``, ``merged``: output ``logits``; ``all``:
``logits``, ``main_logits``, ``second_logits`` from one run of ``merged.onnx``, as
``contract.REQUEST_OUTPUTS`` says); its version is the artifact's version as a decimal integer
(``dataplane.oip_version``). Each function takes the worker's ``DataPlane`` and a model it has checked.
"""

from __future__ import annotations

import json
from typing import Any

from dhat_serve.card import card_brief, card_view
from dhat_serve.contract import INPUT_NAME, request_output_names
from dhat_serve.dataplane import DataPlane, oip_version

EXTENSIONS = ["binary_tensor_data", "statistics", "model_configuration"]
"""The protocol extensions this server speaks (``GET /v2``, gRPC ``ServerMetadata``)."""


def model_metadata(plane: DataPlane, model: str) -> dict[str, Any]:
    """OIP model metadata: the ``images`` input FP32 [-1, C, H, W] and the mode's outputs [-1, classes]; its
    ``parameters`` carry the class names and the mode's robustness card (``card.card_view``), extra fields that
    stock clients pass through."""
    manifest = plane.engine.runtime.manifest
    return {
        "name": model,
        "versions": [oip_version(manifest.version)],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *manifest.input_shape]}],
        "outputs": [
            {"name": n, "datatype": "FP32", "shape": [-1, manifest.num_classes]} for n in request_output_names(model)
        ],
        "parameters": {
            "class_names": list(manifest.class_names),
            "input_range": list(manifest.input_range),
            "artifact_version": manifest.version,
            "robustness": card_view(plane.engine.card, model),
        },
    }


def model_config(plane: DataPlane, model: str) -> dict[str, Any]:
    """Triton's model configuration (``GET /v2/models/{m}/config``), what ``perf_analyzer`` reads first.

    ``max_batch_size`` is ``DHAT_MAX_BATCH`` (images per request), so ``dims`` leave the batch out;
    ``dynamic_batching`` holds the batchers' real settings (``DHAT_BATCH_SIZE``, ``DHAT_MAX_WAIT_MS``,
    ``DHAT_QUEUE_SIZE``, ``DHAT_TIMEOUT_S``; a request's own ``timeout`` may only shorten it). Triton's
    ``parameters`` (string values) carry the artifact version and the mode's short card (``card.card_brief``)."""
    engine = plane.engine
    manifest, cfg = engine.runtime.manifest, engine.cfg
    on_gpu = any(p and p[0] == "CUDAExecutionProvider" for p in engine.runtime.providers().values())
    return {
        "name": model,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": cfg.max_batch,
        "input": [
            {"name": INPUT_NAME, "data_type": "TYPE_FP32", "format": "FORMAT_NCHW", "dims": list(manifest.input_shape)}
        ],
        "output": [
            {"name": n, "data_type": "TYPE_FP32", "dims": [manifest.num_classes]} for n in request_output_names(model)
        ],
        "dynamic_batching": {
            "preferred_batch_size": [cfg.batch_size],
            "max_queue_delay_microseconds": int(cfg.max_wait_ms * 1000),
            "default_queue_policy": {
                "timeout_action": "REJECT",
                "allow_timeout_override": True,
                "default_timeout_microseconds": int(cfg.timeout_s * 1e6),
                "max_queue_size": cfg.queue_size,
            },
        },
        "instance_group": [{"name": model, "kind": "KIND_GPU" if on_gpu else "KIND_CPU", "count": 1}],
        "parameters": {
            "artifact_version": {"string_value": manifest.version},
            "robustness": {"string_value": json.dumps(card_brief(engine.card, model), separators=(",", ":"))},
        },
    }


def model_statistics(plane: DataPlane, model: str) -> dict[str, Any]:
    """One ``model_stats`` entry: Triton's schema, and beside it the project's own counters."""
    observer = plane.observer
    return {
        "name": model,
        "version": oip_version(plane.engine.runtime.manifest.version),
        **observer.to_dict(model),
        **observer.of(model).triton(),
    }
