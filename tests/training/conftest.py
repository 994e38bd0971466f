from __future__ import annotations

import pytest

# A recipe small enough for a test: digits at 8x8, a 5k-parameter WRN, PGD-2, one epoch per stage.
TINY = [
    "model.arch=wrn-10-1-s4",
    "data.image_size=8",
    "data.batch_size=128",
    "validation.n=64",
    "validation.attack.steps=2",
    "validation.attack.step=0.05",
    "stage1.epochs=1",
    "stage2.epochs=1",
    "stage3.epochs=1",
    "stage1.attack.steps=2",
    "stage2.attack.steps=2",
    "stage3.attack.steps=2",
    "stage1.attack.step=0.05",
    "stage2.attack.step=0.05",
    "stage3.attack.step=0.05",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
