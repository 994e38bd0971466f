"""The data plane: the one request path every protocol calls (decode at the edge -> ``DataPlane.infer`` -> encode).

OIP over HTTP and gRPC, ``/classify``, JSON ``/predict`` and ``.npy`` ``/predict`` each decode a request
completely, at the edge, into one ``InferRequest`` (the mode, the images, the outputs asked for, the deadline)
and encode the ``InferResult`` they get back; nothing else on the way is theirs. A refusal raised while an edge
decodes is counted through ``DataPlane.decoding``, as the data plane counts its own. ``infer`` does, in this
order and only here (kserve's ``protocol/dataplane.py`` and MLServer's ``handlers/dataplane.py`` have the same
shape):

1. admission: more than ``max_concurrency`` requests in flight -> ``TooManyRequests`` (429 /
   RESOURCE_EXHAUSTED); else the request counts in flight until it is answered (the batchers and the
   drain read that count);
2. observation: one ``observer.observed`` call per request, so its outcome and latency are counted under
   its endpoint and mode whatever happens below (a refusal, or a failed model run: ``model_error``);
3. the mode check, once: an unknown mode (OIP: model) is the same ``NotFound`` with the same message on every
   protocol, then the key's tier (``auth.Access``): a mode the request's key may not use is ``Forbidden`` (403 /
   PERMISSION_DENIED), and a request that names no mode gets the key's first;
4. ``validation.validate_array``, once, for every protocol (batch size, type, shape, finiteness, range);
5. the engine call (the mode's batcher -> ``ModelRuntime.run``) and the output selection.

The mode keeps its one name from the edge to the batcher: ``InferRequest.mode`` -> ``Engine.infer(mode)`` ->
``Batcher.mode``; the Open Inference Protocol calls it a model, and its edges translate once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from dhat_serve.auth import EVERY_MODE, Access
from dhat_serve.contract import REQUEST_MODES, request_output_names
from dhat_serve.engine import Engine
from dhat_serve.errors import BadRequest, NotFound, Refusal, TooManyRequests
from dhat_serve.observer import ANY_MODE, Observer, observed
from dhat_serve.state import ProcessState
from dhat_serve.validation import validate_array


@dataclass(frozen=True)
class InputSpec:
    """What a request's tensor must fit: the artifact's (C, H, W) and the most images one request may carry."""

    shape: tuple[int, int, int]
    max_batch: int


@dataclass(frozen=True)
class InferRequest:
    """One inference, decoded at the edge: where it came from (``observer.PROTOCOLS``), the mode and version as
    the client named them, its images (the data plane checks them to be (N, C, H, W) in [0, 1]), the outputs asked
    for (None: every output of the mode) and its own deadline in seconds (None: the server's)."""

    endpoint: str
    mode: str | None  # None: the artifact's default mode (merged, or main for a single-head artifact)
    images: np.ndarray
    access: Access  # the modes the request's API key may use (``auth``); no default, so a new edge cannot fail open
    outputs: tuple[str, ...] | None = None
    timeout_s: float | None = None
    version: str | None = None


@dataclass(frozen=True)
class InferResult:
    """The answer before encoding: the checked mode, ``{output name: (N, classes)}`` in the order asked for,
    and the artifact's name and version."""

    mode: str
    outputs: dict[str, np.ndarray]
    artifact: dict[str, str] = field(default_factory=dict)


def oip_version(version: str) -> str:
    """The models' version on the protocol: the artifact version's hex digits as a decimal integer.

    Triton's tools need integer versions (``perf_analyzer`` picks "the latest" with ``stoll``, and stops
    on ``e478126bfceb``); the decimal form names the same artifact, and both forms are accepted in paths."""
    try:
        return str(int(version, 16))
    except ValueError:
        return version


def select_outputs(mode: str, asked: tuple[str, ...] | None) -> tuple[str, ...]:
    """The outputs to answer: every output of ``mode`` when none is named, else the named ones, each known
    and named once (as Triton answers)."""
    names = request_output_names(mode)
    if not asked:
        return names
    seen: set[str] = set()
    for name in asked:
        if name not in names:
            raise BadRequest(f"unknown output {name!r}; this model's outputs: {', '.join(names)}")
        if name in seen:
            raise BadRequest(f"output {name!r} is asked for twice")
        seen.add(name)
    return asked


class DataPlane:
    """This worker's engine, state and observer, and the one ``infer`` every protocol calls."""

    def __init__(self, engine: Engine, state: ProcessState, observer: Observer, max_concurrency: int) -> None:
        self.engine, self.state, self.observer, self.max_concurrency = engine, state, observer, max_concurrency

    def check_mode(self, mode: str, version: str | None = None) -> str:
        """``mode`` if this artifact serves it and ``version`` is empty or this artifact's (either form); else 404,
        worded as the Open Inference Protocol names a mode (a model). Metadata, readiness, statistics and inference
        check a mode here, on HTTP and gRPC."""
        served = self.engine.runtime.manifest.request_modes
        if mode not in served:
            if mode in REQUEST_MODES:  # a mode of the dual head asked of a single-head artifact
                raise NotFound(
                    f"model {mode!r} is not in this artifact: a single-head model (its second head and "
                    f"merger were never trained); models: {', '.join(served)}"
                )
            raise NotFound(f"unknown model {mode!r}; models: {', '.join(served)} (the request modes)")
        artifact = self.engine.runtime.manifest.version
        if version not in (None, "", oip_version(artifact), artifact):
            raise NotFound(
                f"model {mode!r} has no version {version!r}; version: {oip_version(artifact)} (artifact {artifact})"
            )
        return mode

    def check_access(self, mode: str, access: Access) -> str:
        """``mode`` (checked by ``check_mode``) if the request's key may use it, else ``Forbidden``."""
        access.check(mode)
        return mode

    def input_spec(self) -> InputSpec:
        """The artifact's input shape and ``DHAT_MAX_BATCH``, what every decoder checks a tensor against."""
        return InputSpec(self.engine.runtime.manifest.input_shape, self.engine.cfg.max_batch)

    @contextmanager
    def decoding(
        self,
        endpoint: str,
        mode: str | None,
        version: str | None = None,
        known: bool = True,
        access: Access = EVERY_MODE,
    ) -> Iterator[None]:
        """An edge decodes a request inside this block. When the mode is ``known`` before the body (the OIP path,
        gRPC's ``model_name``, ``?mode=``, a field already read), it is checked first, so an unknown mode is the same
        404 whatever the body and costs no decoding (Triton's order; ``infer`` runs the same check again), and a mode
        the request's key may not use is a 403 whatever the body. A refusal
        raised here is counted under ``endpoint`` and the mode (None: the default mode) as ``infer`` counts its own,
        and re-raised for the edge to answer."""
        start = time.perf_counter()
        label = self.engine.runtime.manifest.default_mode if mode is None else mode
        try:
            if known and mode is not None:
                self.check_access(self.check_mode(mode, version), access)
            yield
        except Refusal as exc:
            self.observer.answered(
                endpoint, label if label in REQUEST_MODES else ANY_MODE, exc.reason, time.perf_counter() - start
            )
            raise

    @contextmanager
    def _admitted(self) -> Iterator[None]:
        """The one admission rule: refuse the request one too many in flight, else count it until it leaves."""
        if self.state.in_flight >= self.max_concurrency:
            self.observer.rejected(ANY_MODE, TooManyRequests.reason)
            raise TooManyRequests(f"more than {self.max_concurrency} requests in flight; retry shortly")
        self.state.in_flight += 1
        self.observer.in_flight(self.state.in_flight)
        try:
            yield
        finally:
            self.state.in_flight -= 1
            self.observer.in_flight(self.state.in_flight)

    async def infer(self, request: InferRequest) -> InferResult:
        """Admit, observe, check the model, decode, run and select (see the module docstring); raises a
        ``Refusal`` for the protocol to encode."""
        if request.mode is None:
            request = replace(request, mode=request.access.default(self.engine.runtime.manifest.default_mode))
        label = request.mode if request.mode in REQUEST_MODES else ANY_MODE
        return await observed(self.observer, request.endpoint, label, lambda: self._admitted_infer(request))

    async def _admitted_infer(self, request: InferRequest) -> InferResult:
        with self._admitted():
            mode = self.check_access(self.check_mode(request.mode, request.version), request.access)
            spec = self.input_spec()
            images = validate_array(request.images, spec.shape, spec.max_batch)
            names = select_outputs(mode, request.outputs)
            outputs = await self.engine.infer(mode, images, request.timeout_s)
            return InferResult(mode, {name: outputs[name] for name in names}, self.engine.artifact())
