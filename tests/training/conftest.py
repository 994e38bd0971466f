from __future__ import annotations

import pytest

from training.recipes import SMOKE

TINY = list(SMOKE)  # a recipe small enough for a test: digits at 8x8, a 5k-parameter WRN, PGD-2, one epoch per stage


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
