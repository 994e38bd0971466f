"""The BentoML service: per-request robustness mode on ONNX Runtime.

Two services, because a batchable API cannot take the per-request ``mode``:

- ``Runtime`` (inner) owns the ONNX Runtime sessions and has one batchable API per mode, so
  concurrent requests for the same mode share one ``session.run``;
- ``DHAT`` (public) validates requests (every client error is a 400/413 with a message, never a 500),
  pre-processes, and awaits ``self.runtime.to_async.<mode>(batch)``.

Endpoints: ``POST /classify`` (an image file), ``POST /predict`` (a JSON tensor), ``GET /info``; BentoML
adds ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI page at ``/docs``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dhat_serve.config import ServeConfig
from dhat_serve.contract import (ALL, ALL_OUTPUT_MODES, DEFAULT_REQUEST_MODE, MAIN, MERGED, MODES, REQUEST_MODES, SECOND,
                                 RequestMode)
from dhat_serve.http_limits import RequestGuard
from dhat_serve.manifest import ArtifactError, Manifest, load_manifest
from dhat_serve.preprocess import InputError, batch_result, check_top_k, decode_image, describe, validate_tensor
from dhat_serve.runtime import ModelRuntime

log = logging.getLogger("bentoml.dhat")  # under "bentoml" so BentoML's log configuration shows it
CONFIG = ServeConfig.from_env()  # decorator arguments below need it at import time
RUNTIME_RETRIES = 2

REQUESTS = bentoml.metrics.Counter(name="dhat_requests", documentation="Requests by endpoint, mode and outcome",
                                   labelnames=["endpoint", "mode", "outcome"])
LATENCY = bentoml.metrics.Histogram(name="dhat_request_latency_seconds", documentation="Request latency by mode",
                                    labelnames=["endpoint", "mode"],
                                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
BATCH_SIZE = bentoml.metrics.Histogram(name="dhat_onnx_batch_images", documentation="Images per ONNX Runtime call",
                                       labelnames=["mode"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


def resolve_artifact_dir(cfg: ServeConfig) -> Path:
    """``DHAT_ARTIFACT`` if set, else the BentoML model store entry ``dhat:latest``."""
    if cfg.artifact:
        return Path(cfg.artifact)
    try:
        return Path(bentoml.models.get("dhat:latest").path)
    except bentoml.exceptions.NotFound:
        raise ArtifactError("no artifact: set DHAT_ARTIFACT=ARTIFACT_DIR (or run `dhat serve ARTIFACT_DIR`), "
                            "or import one with `dhat export ... --to-bentoml`") from None


@bentoml.service(name="dhat_runtime", workers=1)
class Runtime:
    """The ONNX Runtime sessions behind adaptive batching: images (N, C, H, W) -> logits."""

    def __init__(self) -> None:
        self.rt = ModelRuntime.load(resolve_artifact_dir(CONFIG), CONFIG.provider)
        for mode, providers in self.rt.providers().items():
            log.info("mode %s: %s runs on %s", mode, self.rt.manifest.modes[mode].file, ", ".join(providers))

    def _run(self, mode: str, images: np.ndarray) -> np.ndarray:
        BATCH_SIZE.labels(mode=mode).observe(len(images))
        return self.rt.run(mode, images)

    @bentoml.api(batchable=True, max_batch_size=CONFIG.batch_size, max_latency_ms=CONFIG.batch_latency_ms)
    def main(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) images -> (N, classes) logits of ``main.onnx``, batched across requests."""
        return self._run(MAIN, images)

    @bentoml.api(batchable=True, max_batch_size=CONFIG.batch_size, max_latency_ms=CONFIG.batch_latency_ms)
    def second(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) images -> (N, classes) logits of ``second.onnx``, batched across requests."""
        return self._run(SECOND, images)

    @bentoml.api(batchable=True, max_batch_size=CONFIG.batch_size, max_latency_ms=CONFIG.batch_latency_ms)
    def merged(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) images -> (N, classes) logits of ``merged.onnx``, batched across requests."""
        return self._run(MERGED, images)

    @bentoml.api(batchable=True, max_batch_size=CONFIG.batch_size, max_latency_ms=CONFIG.batch_latency_ms)
    def all_modes(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, classes): merged, main and second logits from one run of merged.onnx."""
        BATCH_SIZE.labels(mode=ALL).observe(len(images))
        return np.stack(self.rt.run_all(images), axis=1)


def keep_runtime_session(proxy: object) -> bool:
    """Stop BentoML's dependency client from recycling its HTTP session under in-flight requests.

    BentoML 1.4.40 (``_bentoml_impl/client/proxy2.py``, ``SessionManager``) closes and replaces its aiohttp
    session every 100 requests or 300 s, while other requests may still be in flight on the old one;
    under concurrency those fail ("Server disconnected") or hang until the traffic timeout (504). The
    session is kept for the life of the worker instead; ``_call_runtime`` still retries dropped calls.
    """
    seen: set[int] = set()
    stack = [proxy]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or len(seen) > 50:
            continue
        seen.add(id(obj))
        if type(obj).__name__ == "SessionManager" and hasattr(obj, "max_requests"):
            obj.max_requests = 2**62
            obj.max_age = float("inf")
            return True
        stack.extend(v for v in getattr(obj, "__dict__", {}).values() if hasattr(v, "__dict__"))
    return False


def info_document(manifest: Manifest, artifact_dir: Path) -> dict[str, Any]:
    """``GET /info``: what is served (modes, classes, input, hashes, parity, limits), from the manifest."""
    return {
        "name": manifest.name, "version": manifest.version, "precision": manifest.precision,
        "modes": list(REQUEST_MODES), "default_mode": DEFAULT_REQUEST_MODE,
        "class_names": list(manifest.class_names), "input_shape": [None, *manifest.input_shape],
        "input_range": list(manifest.input_range),
        "hashes": {m: g.sha256 for m, g in manifest.modes.items()},
        "parity": {m: g.parity.get("max_abs_diff") for m, g in manifest.modes.items()},
        "architecture": manifest.architecture, "provenance": manifest.provenance,
        "limits": {"max_batch": CONFIG.max_batch, "max_request_bytes": CONFIG.max_request_bytes,
                   "max_image_pixels": CONFIG.max_image_pixels},
        "artifact_dir": str(artifact_dir),
    }


def _info_app() -> Starlette:
    """``GET /info`` as a small ASGI app (BentoML APIs are POST); the manifest is read on first use."""
    cache: dict[str, Any] = {}

    async def info(request: Request) -> JSONResponse:
        if "doc" not in cache:
            directory = resolve_artifact_dir(CONFIG)
            cache["doc"] = info_document(load_manifest(directory), directory)
        return JSONResponse(cache["doc"])

    return Starlette(routes=[Route("/info", info, methods=["GET"])])


@bentoml.asgi_app(_info_app(), path="/")
@bentoml.service(name="dhat", traffic={"timeout": 60})
class DHAT:
    """Classify images with a DH-AT model; each request picks ``mode``: main, second, merged or all."""

    runtime = bentoml.depends(Runtime)

    def __init__(self) -> None:
        self.artifact_dir = resolve_artifact_dir(CONFIG)
        self.manifest = load_manifest(self.artifact_dir)
        self.channels, self.size, _ = self.manifest.input_shape
        self.names = list(self.manifest.class_names)
        if not keep_runtime_session(self.runtime):
            log.warning("could not pin the runtime client's HTTP session; relying on retries")

    def _artifact(self) -> dict[str, str]:
        return {"name": self.manifest.name, "version": self.manifest.version}

    async def _call_runtime(self, api: str, x: np.ndarray) -> np.ndarray:
        """Call the inner service, retrying a dropped connection (inference is pure, so a retry is safe).

        BentoML 1.4.40's dependency client closes its aiohttp session every 100 requests while other
        requests are still in flight on it (``_bentoml_impl/client/proxy2.py``, ``max_requests``); under
        concurrency those fail with "Server disconnected". Without this retry they would be HTTP 500s.
        """
        for attempt in range(RUNTIME_RETRIES + 1):
            try:
                return await getattr(self.runtime.to_async, api)(x)
            except aiohttp.ClientConnectionError as exc:
                if attempt == RUNTIME_RETRIES:
                    raise
                log.warning("runtime call %s failed (%s); retrying", api, exc)
        raise AssertionError("unreachable")

    async def _logits(self, mode: str, x: np.ndarray) -> dict[str, np.ndarray]:
        if mode == ALL:
            stacked = await self._call_runtime("all_modes", x)
            return {m: stacked[:, i] for i, m in enumerate(ALL_OUTPUT_MODES)}
        return {mode: await self._call_runtime(mode, x)}

    async def _observe(self, endpoint: str, mode: str, work) -> dict[str, Any]:  # noqa: ANN001
        start = time.perf_counter()
        try:
            result = await work()
        except InputError as exc:
            REQUESTS.labels(endpoint=endpoint, mode=mode, outcome="bad_request").inc()
            raise InvalidArgument(str(exc)) from None
        REQUESTS.labels(endpoint=endpoint, mode=mode, outcome="ok").inc()
        LATENCY.labels(endpoint=endpoint, mode=mode).observe(time.perf_counter() - start)
        return result

    @bentoml.api(route="/classify")
    async def classify(self, image: Path, mode: RequestMode = DEFAULT_REQUEST_MODE,
                       top_k: int = 5) -> dict[str, Any]:
        """Classify one PNG/JPEG image (multipart field ``image``)."""

        async def work() -> dict[str, Any]:
            k = check_top_k(top_k, len(self.names))
            x = decode_image(Path(image).read_bytes(), self.channels, self.size, CONFIG.max_image_pixels)[None]
            logits = await self._logits(mode, x)
            if mode != ALL:
                return {"mode": mode, **describe(logits[mode][0], self.names, k), "artifact": self._artifact()}
            results = {m: describe(logits[m][0], self.names, k) for m in MODES}
            labels = {r["label"] for r in results.values()}
            return {"mode": ALL, "results": results, "heads_agree": results[MAIN]["label"] == results[SECOND]["label"],
                    "all_agree": len(labels) == 1, "artifact": self._artifact()}

        return await self._observe("classify", mode, work)

    @bentoml.api(route="/predict")
    async def predict(self, inputs: list, mode: RequestMode = DEFAULT_REQUEST_MODE) -> dict[str, Any]:
        """Classify a batch given as JSON: ``inputs`` is (N, C, H, W) floats in [0, 1]."""

        async def work() -> dict[str, Any]:
            x = validate_tensor(inputs, self.manifest.input_shape, CONFIG.max_batch)
            logits = await self._logits(mode, x)
            if mode != ALL:
                return {"mode": mode, **batch_result(logits[mode]), "artifact": self._artifact()}
            per_mode = {m: batch_result(v) for m, v in logits.items()}
            agree = [a == b for a, b in zip(per_mode[MAIN]["labels"], per_mode[SECOND]["labels"])]
            return {"mode": ALL, "modes": per_mode, "heads_agree": agree, "artifact": self._artifact()}

        return await self._observe("predict", mode, work)


DHAT.add_asgi_middleware(RequestGuard, max_bytes=CONFIG.max_request_bytes)
