"""The contract every package shares: the robustness modes and the exported graphs' interface.

One home for these names, so training (which forward to run), export (which graph to write, with which
input and output names), evaluation (which output to score) and the service (what a request may ask for
and what ``/info`` and the protocol endpoints describe) can never drift apart. Torch-free on purpose:
the serving image imports this module.

Every graph ``MODE.onnx`` takes one input ``images`` (N, C, H, W) float32 in [0, 1] and returns
``logits`` (N, classes); ``merged.onnx`` also returns ``main_logits`` and ``second_logits`` (N, classes)
from the same trunk pass, in that order, which is what the request mode ``all`` answers from.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["main", "second", "merged"]
"""``main``: trunk + main head; ``second``: trunk + second head; ``merged``: both heads + merger."""

MODES: tuple[Mode, ...] = get_args(Mode)
MAIN, SECOND, MERGED = MODES

RequestMode = Literal["main", "second", "merged", "all"]
"""What a request may ask for: one mode, or ``all`` (the three from one run of the merged graph)."""

REQUEST_MODES: tuple[str, ...] = get_args(RequestMode)
ALL = REQUEST_MODES[-1]
DEFAULT_REQUEST_MODE: RequestMode = "merged"

INPUT_NAME = "images"
"""The single graph input: (N, C, H, W) float32 images in [0, 1] (normalisation is inside the graph)."""

LOGITS, MAIN_LOGITS, SECOND_LOGITS = "logits", "main_logits", "second_logits"

GRAPH_OUTPUTS: dict[str, tuple[str, ...]] = {
    MAIN: (LOGITS,),
    SECOND: (LOGITS,),
    MERGED: (LOGITS, MAIN_LOGITS, SECOND_LOGITS),
}
"""Output names of each graph, in order; ``merged.onnx`` carries the two heads' logits after its own."""

ALL_OUTPUT_MODES: tuple[str, ...] = (MERGED, MAIN, SECOND)
"""Which mode each output of ``merged.onnx`` belongs to, in ``GRAPH_OUTPUTS[MERGED]`` order."""


def graph_file(mode: str) -> str:
    """The file name of ``mode``'s graph inside an artifact directory (``main.onnx`` ...)."""
    return f"{mode}.onnx"


def parse_mode(name: str, *, allow_all: bool = False) -> str:
    """Return ``name`` if it is a valid mode, else raise ``ValueError`` listing the valid ones."""
    valid = REQUEST_MODES if allow_all else MODES
    if name not in valid:
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(valid)}")
    return name
