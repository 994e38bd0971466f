"""Write one ONNX graph per mode with the dynamo exporter.

Each graph takes ``images`` (``dhat_serve.contract.INPUT_NAME``, N x C x H x W) float32 in [0, 1] with a dynamic batch
axis (normalisation is
inside) and returns ``logits`` (N, classes); ``merged.onnx`` also returns ``main_logits`` and
``second_logits`` from the same trunk pass. Graphs are single self-contained files: the exporter's
default side file ``NAME.onnx.data`` is avoided (``external_data=False``) up to protobuf's 2 GB limit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch
from torch import nn

from dhat_serve.contract import GRAPH_OUTPUTS, INPUT_NAME, MERGED
from training.models.dual_head import AllOutputs, DualHeadNet, ModeView

log = logging.getLogger(__name__)

PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2  # leave room for the graph itself
DEFAULT_OPSET = 18


class Float16Graph(nn.Module):
    """fp16 weights and compute with float32 images in and float32 logits out (clients stay fp32)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.half()

    def forward(self, x: torch.Tensor):
        """(N, C, H, W) float32 -> the inner module's outputs, each (N, classes) float32."""
        out = self.inner(x.half())
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()


def graph_module(net: DualHeadNet, mode: str, fp16: bool = False) -> nn.Module:
    """The module behind ``MODE.onnx``: main / second run one head only; merged runs both + merger."""
    module: nn.Module = AllOutputs(net) if mode == MERGED else ModeView(net, mode)
    return Float16Graph(module).eval() if fp16 else module.eval()


def parameter_bytes(module: nn.Module) -> int:
    """Bytes of weights and buffers: whether the graph fits protobuf's 2 GB limit in one file."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def export_graph(
    module: nn.Module, example: torch.Tensor, path: Path, mode: str, opset: int = DEFAULT_OPSET
) -> Path | None:
    """Export ``module`` to ``path``; return the side data file if the weights had to go to one (> 2 GB)."""
    external = parameter_bytes(module) > PROTOBUF_LIMIT
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=list(GRAPH_OUTPUTS[mode]),
        opset_version=opset,
        dynamo=True,
        external_data=external,
        dynamic_shapes={"x": {0: batch}},
    )
    onnx.checker.check_model(str(path), full_check=False)
    data = path.with_name(path.name + ".data")
    if external:
        log.warning("%s: weights over 2 GB went to the side file %s", path.name, data.name)
        return data
    if data.exists():  # never ship a stale side file next to a self-contained graph
        data.unlink()
    return None


def initializer_names(path: Path) -> list[str]:
    """Names of the weights inside a graph (used to prove main.onnx holds no second-head weights)."""
    model = onnx.load(str(path), load_external_data=False)
    return [init.name for init in model.graph.initializer]
