"""APGD with a custom objective: the checkpoint schedule, best iterate kept, success checked at every step."""

from __future__ import annotations

import pytest
import torch

from training.robustness.apgd import APGDConfig, apgd, checkpoints


def test_checkpoints_follow_croce_and_hein():
    assert sorted(checkpoints(100)) == [22, 41, 57, 70, 80, 87, 93, 99]  # p: 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, ...
    assert min(checkpoints(1)) == 1


def test_the_best_iterate_is_kept_not_the_last():
    """A success level reached once (the third evaluation) and lost after: that iterate comes back."""
    calls: list[torch.Tensor] = []

    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(xa.detach().clone())
        rank = torch.full((len(xa),), int(len(calls) == 3))  # 1st call: clean check (no grad), 2nd: start, 3rd: step 1
        return (xa * 0).flatten(1).sum(1) - (xa - 0.5).abs().flatten(1).sum(1), rank

    x = torch.full((2, 1, 4, 4), 0.5)
    out = apgd(fn, x, APGDConfig(eps=0.1, steps=10), max_rank=1)
    assert torch.equal(out, calls[2])  # the success of step 1 is returned, not step 1's successors
    assert len(calls) == 3  # and the run stopped once every image reached max_rank


def test_objective_rises_and_stays_in_the_ball():
    torch.manual_seed(0)
    w = torch.randn(1, 1, 4, 4)

    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = (xa * w).flatten(1).sum(1)
        return v, torch.zeros_like(v, dtype=torch.long)

    x = torch.rand(3, 1, 4, 4)
    out = apgd(fn, x, APGDConfig(eps=0.05, steps=30, restarts=2), max_rank=1)
    assert float((out - x).abs().max()) <= 0.05 + 1e-6 and 0 <= float(out.min()) and float(out.max()) <= 1
    best = (torch.min(torch.max(x + 0.05 * w.sign(), x - 0.05), x + 0.05).clamp(0, 1) * w).flatten(1).sum(1)
    assert torch.allclose((out * w).flatten(1).sum(1), best, atol=1e-5)  # a linear objective reaches its corner


def test_images_already_at_max_rank_are_left_alone_and_configs_are_checked():
    def fn(xa: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return xa.flatten(1).sum(1), (idx == 0).long()  # image 0 is "already fooled"

    x = torch.full((2, 1, 2, 2), 0.5)
    out = apgd(fn, x, APGDConfig(eps=0.1, steps=5), max_rank=1)
    assert torch.equal(out[0], x[0]) and not torch.equal(out[1], x[1])
    with pytest.raises(ValueError, match="APGD needs eps in"):
        APGDConfig(eps=0.1, steps=0)
