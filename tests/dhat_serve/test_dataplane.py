"""The data plane in process: a failed model run is a counted 500, admission and output selection happen once."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

import numpy as np
import pytest
from starlette.testclient import TestClient

from dhat_serve.config import ServeConfig
from dhat_serve.contract import REQUEST_MODES
from dhat_serve.dataplane import DataPlane, Decoded, InferRequest, select_outputs
from dhat_serve.engine import Engine
from dhat_serve.errors import BadRequest, InferenceFailed, NotFound, TooManyRequests
from dhat_serve.http.app import protocol_app
from dhat_serve.observer import Observer, Prometheus
from dhat_serve.state import ProcessState


class BrokenRuntime:
    """Stands in for ``ModelRuntime``: every ``session.run`` raises, as a corrupt provider would."""

    manifest = SimpleNamespace(
        input_shape=(1, 2, 2), name="t", version="abc", request_modes=REQUEST_MODES, default_mode="merged"
    )

    def run(self, mode: str, images: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("CUDA error: an illegal memory access")


@functools.cache
def _prometheus() -> Prometheus:
    return Prometheus()  # its instruments register once per process, as in a worker


def _plane(max_concurrency: int = 8) -> DataPlane:
    observer = Observer(_prometheus())
    state = ProcessState()
    engine = Engine(BrokenRuntime(), ServeConfig(), observer, lambda: state.in_flight)  # type: ignore[arg-type]
    return DataPlane(engine, state, observer, max_concurrency)


def _request(model: str = "main") -> InferRequest:
    return InferRequest("oip_http", model, lambda spec: Decoded(np.zeros((1, *spec.shape), np.float32)))


def test_a_failed_session_run_is_a_500_counted_as_a_failure_in_the_stats_and_in_prometheus():
    plane = _plane()
    with pytest.raises(InferenceFailed, match="the model run failed") as exc:
        asyncio.run(plane.infer(_request()))
    assert exc.value.status == 500 and plane.state.in_flight == 0
    stats = TestClient(protocol_app(lambda: plane)).get("/v2/models/main/stats").json()["model_stats"][0]
    assert stats["inference_stats"]["fail"]["count"] == 1 and stats["inference_stats"]["success"]["count"] == 0
    counter = plane.observer.prometheus.requests.labels(endpoint="oip_http", mode="main", outcome="model_error")
    before = counter._value.get()
    with pytest.raises(InferenceFailed):
        asyncio.run(plane.infer(_request()))
    assert counter._value.get() == before + 1.0


def test_one_request_too_many_is_refused_by_the_one_admission_rule():
    plane = _plane(max_concurrency=0)
    with pytest.raises(TooManyRequests, match="more than 0 requests in flight"):
        asyncio.run(plane.infer(_request()))
    assert plane.observer.to_dict("any")["rejected"] == {"max_concurrency": 1}


def test_the_model_is_checked_before_the_body_is_decoded():
    decoded = []
    request = InferRequest("predict", "both", lambda spec: decoded.append(spec) or Decoded(np.zeros((1, 1, 2, 2))))
    with pytest.raises(NotFound, match="unknown model 'both'; models: main, second, merged, all"):
        asyncio.run(_plane().infer(request))
    assert decoded == []


def test_outputs_are_selected_once_for_every_protocol():
    assert select_outputs("all", None) == ("logits", "main_logits", "second_logits")
    assert select_outputs("all", ("second_logits",)) == ("second_logits",)
    with pytest.raises(BadRequest, match="unknown output 'probs'; this model's outputs: logits"):
        select_outputs("main", ("probs",))
    with pytest.raises(BadRequest, match="output 'logits' is asked for twice"):
        select_outputs("main", ("logits", "logits"))


class SingleHeadRuntime(BrokenRuntime):
    """A single-head artifact's runtime: ``main.onnx`` alone, answering zeros."""

    manifest = SimpleNamespace(
        input_shape=(1, 2, 2), name="t", version="abc", request_modes=("main",), default_mode="main"
    )

    def run(self, mode: str, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.zeros((len(images), 10), np.float32)}


def test_a_single_head_artifact_serves_main_by_default_and_names_it_when_refusing_the_others():
    observer, state = Observer(_prometheus()), ProcessState()
    engine = Engine(SingleHeadRuntime(), ServeConfig(), observer, lambda: state.in_flight)  # type: ignore[arg-type]
    plane = DataPlane(engine, state, observer, 8)
    assert set(engine.batchers) == {"main"}
    result = asyncio.run(plane.infer(_request(None)))  # type: ignore[arg-type]  # no mode named: the default
    assert result.model == "main" and result.outputs["logits"].shape == (1, 10)
    for mode in ("second", "merged", "all"):
        with pytest.raises(
            NotFound, match=f"model '{mode}' is not in this artifact: a single-head model .*; models: main$"
        ):
            plane.check_model(mode)
    with pytest.raises(NotFound, match="unknown model 'best'; models: main [(]the request modes[)]"):
        plane.check_model("best")
