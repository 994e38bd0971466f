"""Corruptions for the shifted-traffic rows: deterministic for a seed, in [0, 1], each doing what it is named."""

from __future__ import annotations

import pytest
import torch

from training.robustness.shift import SEVERITIES, corrupt, corruptions


def _x() -> torch.Tensor:
    return torch.rand((4, 1, 8, 8), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("name", "severity"), corruptions())
def test_every_corruption_is_deterministic_for_a_seed_and_stays_in_range(name, severity):
    x = _x()
    a, b = corrupt(x, name, severity, seed=0), corrupt(x, name, severity, seed=0)
    assert a.shape == x.shape and torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.equal(a, x)


def test_noise_depends_on_the_seed_and_grows_with_severity():
    x = torch.full((2, 1, 8, 8), 0.5)
    assert not torch.equal(corrupt(x, "gaussian-noise", 1, seed=0), corrupt(x, "gaussian-noise", 1, seed=1))
    spread = [float((corrupt(x, "gaussian-noise", s, seed=0) - x).std()) for s in (1, 2, 3)]
    assert spread[0] < spread[1] < spread[2]
    assert spread[2] == pytest.approx(SEVERITIES["gaussian-noise"][2], rel=0.25)


def test_contrast_shrinks_toward_the_mean_and_blur_smooths():
    x = _x()
    low = corrupt(x, "contrast", 3, seed=0)
    assert torch.allclose(low.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
    assert float(low.std()) < 0.5 * float(x.std())
    rgb = torch.rand((2, 3, 8, 8), generator=torch.Generator().manual_seed(2))
    assert float(corrupt(rgb, "contrast", 2, seed=0).std()) < float(rgb.std())
    blurred = corrupt(x, "gaussian-blur", 3, seed=0)
    assert float(blurred.diff(dim=3).abs().mean()) < float(x.diff(dim=3).abs().mean())
