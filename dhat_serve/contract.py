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

REQUEST_OUTPUTS: dict[str, dict[str, Mode]] = {
    MAIN: {LOGITS: MAIN},
    SECOND: {LOGITS: SECOND},
    MERGED: {LOGITS: MERGED},
    ALL: {LOGITS: MERGED, MAIN_LOGITS: MAIN, SECOND_LOGITS: SECOND},
}
"""What each request mode answers: output name -> the mode whose logits it holds, in graph order.

A single mode answers ``logits`` from its own graph; ``all`` answers the three outputs of one run of
``merged.onnx``. Every endpoint reads this table, so ``all`` is a row here, not a special case there.
"""


SINGLE_HEAD_GRAPHS: tuple[Mode, ...] = (MAIN,)
"""The graphs of a single-head artifact (a run whose second head and merger were never trained): ``main.onnx``."""


def served_modes(graphs: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The request modes an artifact with these graphs answers: every mode with a graph, and ``all`` where
    ``merged.onnx`` is there to give the three logits at once (so a single-head artifact serves ``main`` only)."""
    return tuple(m for m in REQUEST_MODES if request_graph(m) in graphs and (m != ALL or SECOND in graphs))


def default_mode(graphs: tuple[str, ...] | list[str]) -> str:
    """What a request that names no mode gets: ``merged`` (``DEFAULT_REQUEST_MODE``) where it exists, else ``main``."""
    return DEFAULT_REQUEST_MODE if DEFAULT_REQUEST_MODE in graphs else MAIN


def request_graph(request_mode: str) -> Mode:
    """The graph a request mode runs: its own, or ``merged`` for ``all`` (one run gives all three)."""
    return MERGED if request_mode == ALL else request_mode  # type: ignore[return-value]


def request_output_names(request_mode: str) -> tuple[str, ...]:
    """The output names a request mode answers, in graph order (``REQUEST_OUTPUTS``)."""
    return tuple(REQUEST_OUTPUTS[request_mode])


def graph_file(mode: str) -> str:
    """The file name of ``mode``'s graph inside an artifact directory (``main.onnx`` ...)."""
    return f"{mode}.onnx"


def parse_mode(name: str, *, allow_all: bool = False) -> str:
    """Return ``name`` if it is a valid mode, else raise ``ValueError`` listing the valid ones."""
    valid = REQUEST_MODES if allow_all else MODES
    if name not in valid:
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(valid)}")
    return name
