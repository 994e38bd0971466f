"""The attacks on the whole dual-head system: what each one promises, on a tiny network."""

from __future__ import annotations

import pytest
import torch

from training.attacks import pgd
from training.models.dual_head import AllOutputs, ModeView
from training.robustness.adaptive import (
    agree_attack,
    evasion_score,
    is_system_attack,
    joint_attack,
    summed_ce,
    system_config,
    target_classes,
)
from training.robustness.suite import parse_attack

EPS = 0.3


def _data(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 8, 8), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_names_and_schedule():
    for name in ("joint", "joint50", "agree", "agree7"):
        assert is_system_attack(name) and parse_attack(name) == name
    assert not is_system_attack("pgd20") and not is_system_attack("jointx")
    cfg = system_config("agree", 0.1)
    assert cfg.steps == 20 and cfg.step == pytest.approx(2.5 * 0.1 / 20) and cfg.random_start == "uniform"
    assert system_config("joint50", 0.1).steps == 50
    with pytest.raises(ValueError, match="unknown attack 'agreeable'"):
        parse_attack("agreeable")


def test_joint_stays_in_the_ball_and_raises_the_summed_loss(tiny_net):
    system = AllOutputs(tiny_net)
    x, y = _data()
    torch.manual_seed(0)
    x_adv = joint_attack(system, x, y, system_config("joint", EPS))
    assert x_adv.shape == x.shape and float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    with torch.no_grad():
        assert float(summed_ce(system(x_adv), y)) > float(summed_ce(system(x), y))
    assert all(m.training is False for m in tiny_net.modules())  # tiny_net was in eval mode and stays so


def test_targets_are_the_most_likely_wrong_classes_in_order(tiny_net):
    system = AllOutputs(tiny_net)
    x, y = _data(8)
    order = target_classes(system, x, y, None)
    assert order.shape == (8, 9) and not bool((order == y.view(-1, 1)).any())
    with torch.no_grad():
        logits = system(x)[0]
    picked = logits.gather(1, order)
    assert bool((picked[:, :-1] >= picked[:, 1:]).all())
    assert target_classes(system, x, y, 3).shape == (8, 3)


def test_agree_never_evades_less_than_pgd_on_merged_with_the_same_seed(tiny_net):
    system = AllOutputs(tiny_net)
    x, y = _data(24, seed=3)
    cfg = system_config("agree", EPS)
    torch.manual_seed(0)
    x_pgd = pgd(ModeView(tiny_net, "merged"), x, y, cfg)
    torch.manual_seed(0)
    x_agree = agree_attack(system, x, y, cfg, targets=3)
    assert float((x_agree - x).abs().max()) <= EPS + 1e-6
    with torch.no_grad():
        pgd_score, agree_score = evasion_score(system(x_pgd), y), evasion_score(system(x_agree), y)
        clean_score = evasion_score(system(x), y)
    assert bool((agree_score >= torch.maximum(pgd_score, clean_score)).all())  # per image, by construction
    evading = agree_score == 2
    merged, main, second = (o.argmax(1) for o in system(x_agree))
    assert bool(((merged != y) & (main == second))[evading].all())
