"""The BentoML service: per-request robustness mode on ONNX Runtime, one process from socket to session.

``DHAT`` loads the artifact into an ``Engine`` when its worker starts: the ONNX Runtime sessions and one
bounded, batching queue per request mode. Every protocol reaches the sessions through that engine in
the same process: ``POST /classify`` (an image file) and ``POST /predict`` (a JSON tensor; a ``.npy``
body is routed to the protocol app) are BentoML APIs; the Open Inference Protocol v2 (``/v2/...``) and
``GET /info`` are a Starlette app mounted in the same server. BentoML adds ``/healthz``, ``/readyz``,
``/metrics`` and the OpenAPI page at ``/docs``.

Overload is shed, not queued: a full queue is a 503 with Retry-After at once, a request past
``DHAT_TIMEOUT_S`` a 504, more than ``DHAT_MAX_CONCURRENCY`` in flight a 429. On SIGTERM the server stops
accepting and answers every accepted request before it exits (``DHAT_GRACE_S``).
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

from dhat_serve.batching import Overloaded
from dhat_serve.config import ServeConfig
from dhat_serve.contract import ALL, ALL_OUTPUT_MODES, DEFAULT_REQUEST_MODE, MAIN, MODES, REQUEST_MODES, SECOND, RequestMode
from dhat_serve.engine import Engine, EngineHolder, output_names
from dhat_serve import logfilter
from dhat_serve.drain import Drain
from dhat_serve.http_limits import RequestGuard
from dhat_serve.manifest import ArtifactError, Manifest
from dhat_serve.preprocess import InputError, batch_result, check_top_k, decode_image, describe, validate_tensor
from dhat_serve.protocol import RETRY_AFTER_S, protocol_app

log = logging.getLogger("bentoml.dhat")  # under "bentoml" so BentoML's log configuration shows it
CONFIG = ServeConfig.from_env()  # decorator arguments below need it at import time
HOLDER = EngineHolder()  # this worker's engine, set in DHAT.__init__

REQUESTS = bentoml.metrics.Counter(name="dhat_requests", documentation="Requests by endpoint, mode and outcome",
                                   labelnames=["endpoint", "mode", "outcome"])
LATENCY = bentoml.metrics.Histogram(name="dhat_request_latency_seconds", documentation="Request latency by mode",
                                    labelnames=["endpoint", "mode"],
                                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
SECONDS_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_TIME = bentoml.metrics.Histogram(name="dhat_queue_seconds", documentation="Time a request waited for its batch",
                                       labelnames=["mode"], buckets=SECONDS_BUCKETS)
COMPUTE_TIME = bentoml.metrics.Histogram(name="dhat_compute_seconds", documentation="Seconds per ONNX Runtime run",
                                         labelnames=["mode"], buckets=SECONDS_BUCKETS)
BATCH_SIZE = bentoml.metrics.Histogram(name="dhat_onnx_batch_images", documentation="Images per ONNX Runtime call",
                                       labelnames=["mode"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
REJECTED = bentoml.metrics.Counter(name="dhat_rejected", documentation="Requests refused by reason",
                                   labelnames=["mode", "reason"])


def observe(kind: str, mode: str, value: float) -> None:
    """The batchers' measurements into Prometheus: queue and compute time, images per run, refusals by reason."""
    if kind.startswith("rejected:"):
        REJECTED.labels(mode=mode, reason=kind.split(":", 1)[1]).inc()
        return
    {"queue": QUEUE_TIME, "compute": COMPUTE_TIME, "batch": BATCH_SIZE}[kind].labels(mode=mode).observe(value)


def count_concurrency_rejection() -> None:
    """A 429 from the guard: counted before any mode is known."""
    REJECTED.labels(mode="any", reason="max_concurrency").inc()


def resolve_artifact_dir(cfg: ServeConfig) -> Path:
    """``DHAT_ARTIFACT`` if set, else the BentoML model store entry ``dhat:latest``."""
    if cfg.artifact:
        return Path(cfg.artifact)
    try:
        return Path(bentoml.models.get("dhat:latest").path)
    except bentoml.exceptions.NotFound:
        raise ArtifactError("no artifact: set DHAT_ARTIFACT=ARTIFACT_DIR (or run `dhat serve ARTIFACT_DIR`), "
                            "or import one with `dhat export ... --to-bentoml`") from None


def info_document(manifest: Manifest, artifact_dir: Path) -> dict[str, Any]:
    """``GET /info``: what is served (modes, classes, input, hashes, parity, limits), from the manifest."""
    return {
        "name": manifest.name, "version": manifest.version, "precision": manifest.precision,
        "modes": list(REQUEST_MODES), "default_mode": DEFAULT_REQUEST_MODE,
        "outputs": {mode: list(output_names(mode)) for mode in REQUEST_MODES},
        "class_names": list(manifest.class_names), "input_shape": [None, *manifest.input_shape],
        "input_range": list(manifest.input_range),
        "hashes": {m: g.sha256 for m, g in manifest.modes.items()},
        "parity": {m: g.parity.get("max_abs_diff") for m, g in manifest.modes.items()},
        "architecture": manifest.architecture, "provenance": manifest.provenance,
        "limits": {"max_batch": CONFIG.max_batch, "max_request_bytes": CONFIG.max_request_bytes,
                   "max_image_pixels": CONFIG.max_image_pixels, "batch_size": CONFIG.batch_size,
                   "max_wait_ms": CONFIG.max_wait_ms, "queue_size": CONFIG.queue_size, "timeout_s": CONFIG.timeout_s,
                   "max_concurrency": CONFIG.max_concurrency},
        "artifact_dir": str(artifact_dir),
    }


def _info(engine: Engine) -> dict[str, Any]:
    return {**info_document(engine.runtime.manifest, engine.runtime.artifact_dir), "providers": engine.runtime.providers()}


@bentoml.asgi_app(protocol_app(HOLDER, _info), path="/")
@bentoml.service(name="dhat", workers=CONFIG.workers, traffic={"timeout": CONFIG.timeout_s + 5})
class DHAT:
    """Classify images with a DH-AT model; each request picks ``mode``: main, second, merged or all."""

    def __init__(self) -> None:
        logfilter.install()
        self.engine = Engine.load(resolve_artifact_dir(CONFIG), CONFIG, observe, lambda: HOLDER.in_flight)
        HOLDER.engine = self.engine
        Drain(lambda: HOLDER.in_flight, CONFIG.grace_s).install()
        self.manifest = self.engine.runtime.manifest
        self.channels, self.size, _ = self.manifest.input_shape
        self.names = list(self.manifest.class_names)

    def _artifact(self) -> dict[str, str]:
        return {"name": self.manifest.name, "version": self.manifest.version}

    async def _logits(self, mode: str, x: np.ndarray) -> dict[str, np.ndarray]:
        """``{mode: (N, classes)}``; for ``all`` the three outputs of one merged.onnx run, keyed by mode."""
        outputs = await self.engine.infer(mode, x)
        if mode == ALL:
            return dict(zip(ALL_OUTPUT_MODES, (outputs[n] for n in output_names(ALL))))
        return {mode: outputs[output_names(mode)[0]]}

    async def _observe(self, endpoint: str, mode: str, work, ctx: bentoml.Context) -> dict[str, Any]:  # noqa: ANN001
        """Run ``work``: a client error is a 400 with its message, overload a 503 + Retry-After or a 504."""
        start = time.perf_counter()
        try:
            result = await work()
        except InputError as exc:
            REQUESTS.labels(endpoint=endpoint, mode=mode, outcome="bad_request").inc()
            log.info("HTTP 400 %s: %s", endpoint, exc)
            raise InvalidArgument(str(exc)) from None
        except Overloaded as exc:
            REQUESTS.labels(endpoint=endpoint, mode=mode, outcome=exc.reason).inc()  # REJECTED counted by the batcher
            log.warning("HTTP %d %s: %s", exc.status, endpoint, exc)
            ctx.response.status_code = exc.status
            if exc.status == HTTPStatus.SERVICE_UNAVAILABLE:
                ctx.response.headers["Retry-After"] = RETRY_AFTER_S
            return {"error": str(exc)}
        REQUESTS.labels(endpoint=endpoint, mode=mode, outcome="ok").inc()
        LATENCY.labels(endpoint=endpoint, mode=mode).observe(time.perf_counter() - start)
        return result

    @bentoml.api(route="/classify")
    async def classify(self, image: Path, ctx: bentoml.Context, mode: RequestMode = DEFAULT_REQUEST_MODE,
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

        return await self._observe("classify", mode, work, ctx)

    @bentoml.api(route="/predict")
    async def predict(self, inputs: list, ctx: bentoml.Context, mode: RequestMode = DEFAULT_REQUEST_MODE) -> dict[str, Any]:
        """Classify a batch given as JSON: ``inputs`` is (N, C, H, W) floats in [0, 1] (or POST a .npy body)."""

        async def work() -> dict[str, Any]:
            x = validate_tensor(inputs, self.manifest.input_shape, CONFIG.max_batch)
            logits = await self._logits(mode, x)
            if mode != ALL:
                return {"mode": mode, **batch_result(logits[mode]), "artifact": self._artifact()}
            per_mode = {m: batch_result(v) for m, v in logits.items()}
            agree = [a == b for a, b in zip(per_mode[MAIN]["labels"], per_mode[SECOND]["labels"])]
            return {"mode": ALL, "modes": per_mode, "heads_agree": agree, "artifact": self._artifact()}

        return await self._observe("predict", mode, work, ctx)


DHAT.add_asgi_middleware(RequestGuard, max_bytes=CONFIG.max_request_bytes, max_concurrency=CONFIG.max_concurrency,
                         counter=HOLDER, on_reject=count_concurrency_rejection)
