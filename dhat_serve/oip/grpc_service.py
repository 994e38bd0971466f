"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), in every worker process.

BentoML 1.4 serves new-style services over HTTP only, so each worker starts a ``grpc.aio`` server on its
own event loop, beside uvicorn, on ``DHAT_GRPC_PORT`` (with ``SO_REUSEPORT``, so every worker binds the
same port and the kernel spreads connections). It implements exactly the service the stock clients call,
from Triton's own generated messages (``tritonclient.grpc.service_pb2``: a superset of the OIP proto, so
``ModelConfig`` and ``ModelStatistics`` come with it and no proto of ours can drift from theirs).

Every RPC takes the same path as HTTP: ``ModelInfer`` decodes into a ``dataplane.InferRequest`` (the
tensor through ``oip.codec.decode_tensor``, Triton's ``timeout`` / ``priority`` through
``oip.codec.request_timeout``) and calls ``DataPlane.infer``; the metadata RPCs describe models through
``oip.models``. A refusal ends the call with its ``Refusal.grpc_code`` (the table in ``errors``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc

from dhat_serve import __version__
from dhat_serve.auth import OPEN_RPCS, Access, ApiKeys
from dhat_serve.card import card_brief
from dhat_serve.config import ServeConfig
from dhat_serve.contract import INPUT_NAME
from dhat_serve.dataplane import DataPlane, InferRequest, oip_version
from dhat_serve.errors import BadRequest, Refusal, Unauthorized, log_refusal
from dhat_serve.oip.codec import decode_tensor, request_timeout
from dhat_serve.oip.models import EXTENSIONS, model_config, model_metadata, model_statistics

log = logging.getLogger("bentoml.dhat")
CARD_METADATA = "dhat-robustness"
"""The trailing metadata key of ``ModelMetadata`` that holds the mode's short robustness card (JSON)."""


def parameters(params: Any) -> dict[str, Any]:
    """A request's ``InferParameter`` map as plain values, the form ``oip.request_timeout`` reads."""
    return {
        key: getattr(p, p.WhichOneof("parameter_choice"))
        for key, p in params.items()
        if p.WhichOneof("parameter_choice")
    }


def request_tensor(request: pb.ModelInferRequest) -> np.ndarray:
    """The one input of a ``ModelInferRequest``, raw or typed, through the codec's ``decode_tensor`` (as on HTTP)."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        raise BadRequest(f"this model takes exactly one input {INPUT_NAME!r}, got {[t.name for t in request.inputs]}")
    spec = request.inputs[0]
    raw = None
    if request.raw_input_contents:
        if len(request.raw_input_contents) != 1:
            raise BadRequest(f"raw_input_contents has {len(request.raw_input_contents)} entries for 1 input")
        raw = request.raw_input_contents[0]
    return decode_tensor(spec.name, spec.datatype, list(spec.shape), spec.contents.fp32_contents, raw)


def infer_request(request: pb.ModelInferRequest, context: Any, access: Access) -> InferRequest:
    """The data plane's request of a ``ModelInferRequest``, decoded completely; its deadline is the shorter of
    Triton's ``timeout`` parameter and the client's own gRPC deadline; ``access``: the modes its key may use."""
    images = request_tensor(request)
    timeout_s = request_timeout(parameters(request.parameters))
    remaining = context.time_remaining()  # the client's gRPC deadline, if it set one
    if remaining is not None:
        timeout_s = remaining if timeout_s is None else min(timeout_s, remaining)
    outputs = tuple(o.name for o in request.outputs) or None
    return InferRequest("oip_grpc", request.model_name, images, access, outputs, timeout_s, request.model_version)


async def refuse(context: grpc.aio.ServicerContext, exc: Refusal, where: str) -> NoReturn:
    """End the call with the refusal's gRPC status (``Refusal.grpc_code``) and message, logged once as every
    refusal is. ``abort`` raises; the final ``raise`` only tells type checkers so."""
    log_refusal(exc, f"gRPC {where}")
    await context.abort(getattr(grpc.StatusCode, exc.grpc_code), str(exc))
    raise exc


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The OIP/Triton gRPC service over one worker's ``DataPlane`` (a callable: 503 ``starting`` while loading)."""

    def __init__(self, plane: Callable[[], DataPlane], keys: ApiKeys) -> None:
        self.plane, self.keys = plane, keys

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        """The process answers (health: open without a key)."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        """Loaded, warm and not draining (health: open without a key)."""
        try:
            return pb.ServerReadyResponse(ready=self.plane().state.ready)
        except Refusal:  # still loading: not ready, which is an answer, not an error
            return pb.ServerReadyResponse(ready=False)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        """The server's name, version and protocol extensions, as ``GET /v2``."""
        return pb.ServerMetadataResponse(name="dhat", version=__version__, extensions=EXTENSIONS)

    async def _model(self, context: Any, name: str | None, version: str, where: str) -> tuple[DataPlane, str]:
        """The data plane and the model an RPC addresses, checked there (``name`` None: no model, only the plane),
        or the call aborted with the refusal's status (UNAVAILABLE while loading, NOT_FOUND for an unknown one)."""
        try:
            plane = self.plane()
            return plane, plane.check_mode(name, version) if name is not None else ""
        except Refusal as exc:
            await refuse(context, exc, where)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        """Whether the model can be served now (NOT_FOUND for an unknown model or version)."""
        plane, _ = await self._model(context, request.name, request.version, "ModelReady")
        return pb.ModelReadyResponse(ready=plane.state.ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        """The model's input and outputs, as ``GET /v2/models/{m}`` (``oip.models.model_metadata``)."""
        plane, model = await self._model(context, request.name, request.version, "ModelMetadata")
        doc = model_metadata(plane, model)
        doc.pop("parameters")  # the message has no place for them: HTTP metadata and /info carry them whole
        brief = json.dumps(card_brief(plane.engine.card, model), separators=(",", ":"))
        context.set_trailing_metadata(((CARD_METADATA, brief),))  # the short card, where stock clients ignore it
        return json_format.ParseDict(doc, pb.ModelMetadataResponse())

    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        """Triton's model configuration, parsed into Triton's own ``ModelConfig`` message."""
        doc = model_config(*await self._model(context, request.name, request.version, "ModelConfig"))
        return json_format.ParseDict({"config": doc}, pb.ModelConfigResponse())

    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Any) -> pb.ModelStatisticsResponse:
        """Triton's statistics of one model, or of every model when no name is given."""
        plane, model = await self._model(context, request.name or None, request.version, "ModelStatistics")
        stats = [
            model_statistics(plane, m) for m in ([model] if model else plane.engine.runtime.manifest.request_modes)
        ]
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        """One inference through ``DataPlane.infer`` (counted as ``oip_grpc``), encoded as raw output contents."""
        try:
            plane = self.plane()
            authorization = dict(context.invocation_metadata() or ()).get("authorization")
            access = self.keys.access(authorization, "ModelInfer")  # the interceptor accepted the key: its tier
            with plane.decoding("oip_grpc", request.model_name, request.model_version, access=access):
                decoded = infer_request(request, context, access)
            result = await plane.infer(decoded)
        except Refusal as exc:
            await refuse(context, exc, "ModelInfer")
        response = pb.ModelInferResponse(
            model_name=result.mode, model_version=oip_version(result.artifact["version"]), id=request.id
        )
        for name, array in result.outputs.items():
            array = np.ascontiguousarray(array, dtype=np.float32)
            response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
            response.raw_output_contents.append(array.tobytes())
        return response


class KeyInterceptor(grpc.aio.ServerInterceptor):
    """API keys on gRPC (``auth``): ``authorization: Bearer KEY`` metadata, else UNAUTHENTICATED; health RPCs open."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        """The RPC's own handler when its key is good (or none is needed), else one that aborts UNAUTHENTICATED."""
        if not self.keys.enabled or details.method in OPEN_RPCS:
            return await continuation(details)
        try:
            self.keys.access(dict(details.invocation_metadata or ()).get("authorization"), details.method)
        except Unauthorized as exc:
            refusal = exc  # the reason, never the key
        else:
            return await continuation(details)

        async def deny(request: bytes, context: grpc.aio.ServicerContext) -> None:
            await refuse(context, refusal, details.method)

        return grpc.unary_unary_rpc_method_handler(deny)


class GrpcServer:
    """One worker's ``grpc.aio`` server: started on the worker's event loop, stopped by the drain."""

    def __init__(self, plane: Callable[[], DataPlane], cfg: ServeConfig, keys: ApiKeys) -> None:
        options = [
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", cfg.max_request_bytes),
            ("grpc.max_send_message_length", cfg.max_request_bytes),
        ]
        self.server = grpc.aio.server(options=options, interceptors=[KeyInterceptor(keys)])
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(plane, keys), self.server)
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
        log.info(
            "gRPC (Open Inference Protocol, inference.GRPCInferenceService) on %s%s",
            self.address,
            " with TLS" if self.tls else "",
        )

    async def stop(self, grace_s: float) -> None:
        """Refuse new RPCs, let those in progress finish for up to ``grace_s`` seconds."""
        await self.server.stop(grace_s)
