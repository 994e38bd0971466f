"""The robustness modes a DH-AT network answers in.

One name per mode, shared by training (which forward to run), export (which graph to write) and the
service (what a request asks for). Torch-free on purpose: the serving image imports this.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["main", "second", "merged"]
"""``main``: trunk + main head; ``second``: trunk + second head; ``merged``: both heads + merger."""

MODES: tuple[Mode, ...] = get_args(Mode)

RequestMode = Literal["main", "second", "merged", "all"]
"""What a request may ask for: one mode, or ``all`` (the three from one run of the merged graph)."""

REQUEST_MODES: tuple[str, ...] = get_args(RequestMode)


def parse_mode(name: str, *, allow_all: bool = False) -> str:
    """Return ``name`` if it is a valid mode, else raise ``ValueError`` listing the valid ones."""
    valid = REQUEST_MODES if allow_all else MODES
    if name not in valid:
        raise ValueError(f"unknown mode {name!r}; valid modes: {', '.join(valid)}")
    return name
