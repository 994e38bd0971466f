"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), in every worker process.

BentoML 1.4 serves new-style services over HTTP only, so each worker starts a ``grpc.aio`` server on its
own event loop, beside uvicorn, on ``DHAT_GRPC_PORT`` (with ``SO_REUSEPORT``, so every worker binds the
same port and the kernel spreads connections). It implements exactly the service the stock clients call,
from Triton's own generated messages (``tritonclient.grpc.service_pb2``: a superset of the OIP proto, so
``ModelConfig`` and ``ModelStatistics`` come with it and no proto of ours can drift from theirs).

Every RPC takes the same path as HTTP: the worker's ``ProcessState`` (requests in flight, the drain,
the engine and its batchers), ``validation.validate_array``, ``oip.request_timeout`` for Triton's
``timeout`` / ``priority`` parameters, ``observer.observed`` for the metrics (``endpoint="oip_grpc"``),
and the same descriptions as the HTTP routes (``oip_routes.model_metadata`` / ``model_config`` /
``model_statistics``). A refusal becomes the gRPC status of its HTTP status (``GRPC_STATUS``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from dhat_serve import __version__
from dhat_serve.auth import OPEN_RPCS, ApiKeys
from dhat_serve.config import ServeConfig
from dhat_serve.contract import INPUT_NAME, REQUEST_MODES, request_output_names
from dhat_serve.errors import BadRequest, Refusal, Unauthorized, log_refusal
from dhat_serve.observer import ANY_MODE, observed
from dhat_serve.oip import DATATYPES, request_timeout
from dhat_serve.oip_routes import (EXTENSIONS, check_model, model_config, model_metadata, model_statistics,
                                    oip_version)
from dhat_serve.state import ProcessState
from dhat_serve.validation import validate_array

if TYPE_CHECKING:
    from dhat_serve.engine import Engine

log = logging.getLogger("bentoml.dhat")

GRPC_STATUS = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED, 404: grpc.StatusCode.NOT_FOUND,
               413: grpc.StatusCode.RESOURCE_EXHAUSTED, 429: grpc.StatusCode.RESOURCE_EXHAUSTED,
               503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}
"""The gRPC status of each refusal's HTTP status (the mapping KServe and Triton use)."""


def parameters(params: Any) -> dict[str, Any]:  # noqa: ANN401 - a protobuf map<string, InferParameter>
    """A request's ``InferParameter`` map as plain values, the form ``oip.request_timeout`` reads."""
    return {key: getattr(p, p.WhichOneof("parameter_choice")) for key, p in params.items()
            if p.WhichOneof("parameter_choice")}


def request_images(request: pb.ModelInferRequest, image_shape: tuple[int, int, int], max_batch: int) -> np.ndarray:
    """The one FP32 input ``images`` (N, C, H, W) of a ``ModelInferRequest``, raw or typed, validated as on HTTP."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        names = [t.name for t in request.inputs]
        raise BadRequest(f"this model takes exactly one input {INPUT_NAME!r}, got {names}")
    spec = request.inputs[0]
    if spec.datatype != "FP32":
        known = spec.datatype in DATATYPES
        raise BadRequest(f"input {INPUT_NAME!r} must be FP32, got {spec.datatype!r}" + ("" if known else " (unknown)"))
    shape = list(spec.shape)
    if any(d < 0 for d in shape):
        raise BadRequest(f"input {INPUT_NAME!r}: shape must be non-negative integers, got {shape}")
    count = math.prod(shape)
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise BadRequest(f"raw_input_contents has {len(request.raw_input_contents)} entries for 1 input")
        raw = request.raw_input_contents[0]
        if len(raw) != count * 4:
            raise BadRequest(f"input {INPUT_NAME!r}: shape {shape} of FP32 needs {count * 4} bytes, "
                             f"raw_input_contents holds {len(raw)}")
        array = np.frombuffer(raw, dtype=np.float32)
    else:
        array = np.asarray(spec.contents.fp32_contents, dtype=np.float32)
        if array.size != count:
            raise BadRequest(f"input {INPUT_NAME!r}: shape {shape} needs {count} values, fp32_contents has {array.size}")
    return validate_array(array.reshape(shape), image_shape, max_batch)


def requested_outputs(request: pb.ModelInferRequest, model: str) -> list[str]:
    """The outputs asked for (all of the model's when none is named); unknown or repeated ones refused."""
    names = request_output_names(model)
    asked = [o.name for o in request.outputs]
    for name in asked:
        if name not in names:
            raise BadRequest(f"unknown output {name!r}; this model's outputs: {', '.join(names)}")
    if len(set(asked)) != len(asked):
        raise BadRequest("an output is asked for twice")
    return asked or list(names)


async def refuse(context: grpc.aio.ServicerContext, exc: Refusal, where: str) -> None:
    """End the call with the refusal's gRPC status (``GRPC_STATUS``) and message, logged once as every refusal is."""
    log_refusal(exc, f"gRPC {where}")
    await context.abort(GRPC_STATUS.get(exc.status, grpc.StatusCode.INTERNAL), str(exc))


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The OIP/Triton gRPC service over one worker's ``ProcessState``."""

    def __init__(self, state: ProcessState, max_concurrency: int) -> None:
        self.state, self.max_concurrency = state, max_concurrency

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:  # noqa: N802, ANN401
        """The process answers (health: open without a key)."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:  # noqa: N802, ANN401
        """``ProcessState.ready``: loaded, warm and not draining (health: open without a key)."""
        return pb.ServerReadyResponse(ready=self.state.ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:  # noqa: N802, ANN401
        """The server's name, version and protocol extensions, as ``GET /v2``."""
        return pb.ServerMetadataResponse(name="dhat", version=__version__, extensions=EXTENSIONS)

    async def _engine(self, context: Any, where: str) -> Engine:  # noqa: ANN401
        """This worker's engine, or the call aborted with UNAVAILABLE while it is still loading."""
        try:
            return self.state.require()
        except Refusal as exc:
            await refuse(context, exc, where)
        raise AssertionError("unreachable: abort raises")  # for type checkers

    async def _model(self, context: Any, name: str, version: str, where: str) -> tuple[Engine, str]:  # noqa: ANN401
        """The engine and the checked model an RPC addresses, or the call aborted with the refusal's status
        (UNAVAILABLE while loading, NOT_FOUND for an unknown model or version)."""
        engine = await self._engine(context, where)
        try:
            return engine, check_model(engine, name, version)
        except Refusal as exc:
            await refuse(context, exc, where)
        raise AssertionError("unreachable: abort raises")  # for type checkers

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:  # noqa: N802, ANN401
        """Whether the model can be served now (NOT_FOUND for an unknown model or version)."""
        await self._model(context, request.name, request.version, "ModelReady")
        return pb.ModelReadyResponse(ready=self.state.ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:  # noqa: N802, ANN401
        """The model's input and outputs, as ``GET /v2/models/{m}`` (``oip_routes.model_metadata``)."""
        doc = model_metadata(*await self._model(context, request.name, request.version, "ModelMetadata"))
        doc.pop("parameters")  # class names and input range: HTTP metadata and /info carry them
        return json_format.ParseDict(doc, pb.ModelMetadataResponse())

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:  # noqa: N802, ANN401
        """Triton's model configuration, parsed into Triton's own ``ModelConfig`` message."""
        doc = model_config(*await self._model(context, request.name, request.version, "ModelConfig"))
        return json_format.ParseDict({"config": doc}, pb.ModelConfigResponse())

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Any) -> pb.ModelStatisticsResponse:  # noqa: N802, ANN401
        """Triton's statistics of one model, or of every model when no name is given."""
        if request.name:
            engine, model = await self._model(context, request.name, request.version, "ModelStatistics")
            models = [model]
        else:
            engine, models = await self._engine(context, "ModelStatistics"), list(REQUEST_MODES)
        stats = [model_statistics(engine, m) for m in models]
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:  # noqa: N802, ANN401
        """One inference: counted as ``oip_grpc``, inside the worker's in-flight count (drain, batching)."""
        label = request.model_name if request.model_name in REQUEST_MODES else ANY_MODE
        refusal = self.state.over_capacity(self.max_concurrency)
        if refusal is not None:
            await refuse(context, refusal, "ModelInfer")
        self.state.enter()
        try:
            return await observed(self.state.observer, "oip_grpc", label, lambda: self._infer(request, context))
        except Refusal as exc:
            await refuse(context, exc, "ModelInfer")
        finally:
            self.state.leave()
        raise AssertionError("unreachable: abort raises")  # for type checkers

    async def _infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:  # noqa: ANN401
        engine = self.state.require()
        model = check_model(engine, request.model_name, request.model_version)
        manifest = engine.runtime.manifest
        images = request_images(request, manifest.input_shape, engine.cfg.max_batch)
        names = requested_outputs(request, model)
        timeout_s = request_timeout(parameters(request.parameters))
        remaining = context.time_remaining()  # the client's gRPC deadline, if it set one
        if remaining is not None:
            timeout_s = remaining if timeout_s is None else min(timeout_s, remaining)
        outputs = await engine.infer(model, images, timeout_s)
        response = pb.ModelInferResponse(model_name=model, model_version=oip_version(manifest), id=request.id)
        for name in names:
            array = np.ascontiguousarray(outputs[name], dtype=np.float32)
            response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
            response.raw_output_contents.append(array.tobytes())
        return response


class KeyInterceptor(grpc.aio.ServerInterceptor):
    """API keys on gRPC (``auth``): ``authorization: Bearer KEY`` metadata, else UNAUTHENTICATED; health RPCs open."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:  # noqa: ANN401
        """The RPC's own handler when its key is good (or none is needed), else one that aborts UNAUTHENTICATED."""
        if not self.keys.enabled or details.method in OPEN_RPCS:
            return await continuation(details)
        problem = self.keys.problem(dict(details.invocation_metadata or ()).get("authorization"))
        if problem is None:
            return await continuation(details)
        refusal = Unauthorized(f"{problem}: {details.method} needs an API key")  # the reason, never the key

        async def deny(request: bytes, context: grpc.aio.ServicerContext) -> None:
            await refuse(context, refusal, details.method)

        return grpc.unary_unary_rpc_method_handler(deny)


class GrpcServer:
    """One worker's ``grpc.aio`` server: started on the worker's event loop, stopped by the drain."""

    def __init__(self, state: ProcessState, cfg: ServeConfig, keys: ApiKeys) -> None:
        options = [("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", cfg.max_request_bytes),
                   ("grpc.max_send_message_length", cfg.max_request_bytes)]
        self.server = grpc.aio.server(options=options, interceptors=[KeyInterceptor(keys)])
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state, cfg.max_concurrency),
                                                                    self.server)
        self.address = f"{cfg.grpc_host}:{cfg.grpc_port}"
        self.tls = bool(cfg.ssl_certfile and cfg.ssl_keyfile)
        if self.tls:
            pair = (Path(cfg.ssl_keyfile).read_bytes(), Path(cfg.ssl_certfile).read_bytes())
            bound = self.server.add_secure_port(self.address, grpc.ssl_server_credentials([pair]))
        else:
            bound = self.server.add_insecure_port(self.address)
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {self.address}")

    async def start(self) -> None:
        """Begin answering RPCs."""
        await self.server.start()
        log.info("gRPC (Open Inference Protocol, inference.GRPCInferenceService) on %s%s", self.address,
                 " with TLS" if self.tls else "")

    async def stop(self, grace_s: float) -> None:
        """Refuse new RPCs, let those in progress finish for up to ``grace_s`` seconds."""
        await self.server.stop(grace_s)
