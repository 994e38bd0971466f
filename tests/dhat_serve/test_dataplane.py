"""The data plane in process: a failed model run is a counted 500, admission and output selection happen once."""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace

import numpy as np
import pytest
from starlette.testclient import TestClient

from dhat_serve.auth import EVERY_MODE
from dhat_serve.config import ServeConfig
from dhat_serve.contract import REQUEST_MODES
from dhat_serve.dataplane import DataPlane, InferRequest, select_outputs
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


def _request(mode: str = "main") -> InferRequest:
    return InferRequest("oip_http", mode, np.zeros((1, 1, 2, 2), np.float32), EVERY_MODE)


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


def test_the_mode_is_checked_once_before_the_tensor_and_a_refusal_while_decoding_is_counted():
    # an edge decodes completely (kserve, MLServer); the data plane checks the mode first, then the tensor
    plane = _plane()
    with pytest.raises(NotFound, match="unknown model 'both'; models: main, second, merged, all"):
        bad_tensor = np.full((1, 1, 2, 2), 5.0)  # a bad tensor, too: the mode is checked first
        asyncio.run(plane.infer(InferRequest("predict", "both", bad_tensor, EVERY_MODE)))
    assert plane.observer.to_dict("any")["rejected"] == {}
    with pytest.raises(BadRequest, match="not JSON"), plane.decoding("predict", "second"):
        raise BadRequest("the body is not JSON")
    counter = plane.observer.prometheus.requests.labels(endpoint="predict", mode="second", outcome="bad_request")
    assert counter._value.get() >= 1.0
    fail = plane.observer.of("second").fail
    assert fail.count >= 1


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
    assert result.mode == "main" and result.outputs["logits"].shape == (1, 10)
    for mode in ("second", "merged", "all"):
        with pytest.raises(
            NotFound, match=f"model '{mode}' is not in this artifact: a single-head model .*; models: main$"
        ):
            plane.check_mode(mode)
    with pytest.raises(NotFound, match="unknown model 'best'; models: main [(]the request modes[)]"):
        plane.check_mode("best")


def test_a_request_cannot_be_built_without_the_keys_access_so_a_new_edge_fails_closed():
    """Every edge passes the modes its key may use; one that forgot cannot build a request at all (no default)."""
    with pytest.raises(TypeError, match="access"):
        InferRequest("predict", "main", np.zeros((1, 1, 2, 2), np.float32))  # type: ignore[call-arg]
