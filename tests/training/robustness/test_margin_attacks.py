"""The margin attacks of the strong suite on a tiny network: names, budgets, and what each one promises."""

from __future__ import annotations

import pytest
import torch

from training.models.dual_head import AllOutputs, ModeView
from training.robustness.adaptive import evasion_score, is_system_attack
from training.robustness.apgd import APGDConfig
from training.robustness.evasion import evade_attack
from training.robustness.margin_attacks import (
    margin_attack,
    margin_config,
    system_attack,
    system_rank,
)
from training.robustness.suite import STRONG, expand_attacks, parse_attack

EPS = 0.3


def _data(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 8, 8), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_names_budgets_and_the_preset():
    assert margin_config("margin", 0.1) == APGDConfig(eps=0.1, steps=100, restarts=1)
    assert margin_config("system50x3", 0.1) == APGDConfig(eps=0.1, steps=50, restarts=3)
    for name in ("margin20", "system100x3", "evade100", "evade"):
        assert parse_attack(name) == name
    assert is_system_attack("system100x3") and is_system_attack("evade") and not is_system_attack("margin100")
    with pytest.raises(ValueError, match="unknown attack 'marginal'"):
        parse_attack("marginal")
    dual, single = expand_attacks(("strong",), dual=True), expand_attacks(("pgd20", "strong"), dual=False)
    assert dual == STRONG and dual[0] == "clean" and "autoattack" in dual and "evade100" in dual
    assert not any(is_system_attack(a) for a in single) and single.count("pgd20") == 1


def test_margin_attack_is_never_weaker_per_image_than_its_own_first_runs(tiny_net):
    model = ModeView(tiny_net, "main")
    x, y = _data(24)
    results = {}
    for name in ("margin10", "margin10x3"):
        torch.manual_seed(0)
        x_adv = margin_attack(model, x, y, margin_config(name, EPS))
        assert float((x_adv - x).abs().max()) <= EPS + 1e-6
        with torch.no_grad():
            results[name] = model(x_adv).argmax(1) == y
    assert bool((results["margin10x3"] <= results["margin10"]).all())  # restarts only add fooled images
    with torch.no_grad():
        assert bool((results["margin10"] <= (model(x).argmax(1) == y)).all())  # never worse than clean, per image


def test_system_attack_ranks_merged_first_and_stays_in_the_ball(tiny_net):
    system = AllOutputs(tiny_net)
    x, y = _data()
    torch.manual_seed(0)
    x_adv = system_attack(system, x, y, margin_config("system10x2", EPS))
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6 and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    with torch.no_grad():
        assert bool((system_rank(system(x_adv), y) >= system_rank(system(x), y)).all())
    logits = torch.eye(3).unsqueeze(0).repeat(3, 1, 1)  # three outputs, three images, each predicting its index
    assert system_rank(tuple(logits), torch.tensor([0, 0, 2])).tolist() == [0, 5, 0]


def test_evade_never_evades_less_than_margin_on_merged_and_each_evasion_is_real(tiny_net):
    system = AllOutputs(tiny_net)
    x, y = _data(24, seed=3)
    cfg = margin_config("evade10", EPS)
    torch.manual_seed(0)
    x_margin = margin_attack(ModeView(tiny_net, "merged"), x, y, cfg)
    torch.manual_seed(0)
    x_evade = evade_attack(system, x, y, cfg, targets=3)
    assert float((x_evade - x).abs().max()) <= EPS + 1e-6
    with torch.no_grad():
        score, base = evasion_score(system(x_evade), y), evasion_score(system(x_margin), y)
        clean = evasion_score(system(x), y)
        merged, main, second = (o.argmax(1) for o in system(x_evade))
    assert bool((score >= torch.maximum(base, clean)).all())
    assert bool(((merged != y) & (main == second))[score == 2].all())


def test_a_success_counts_only_when_every_decision_is_firm():
    from training.robustness.evasion import firm_evasion_score

    y = torch.tensor([0, 0, 0, 0])
    merged = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 0.001], [1.0, 0.0]])  # wrong, wrong, barely wrong, right
    main = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    second = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert firm_evasion_score((merged, main, second), y).tolist() == [2, 1, 0, 0]
    barely = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.005]] * 4)
    assert firm_evasion_score((barely[0], barely[0], barely[1]), y).tolist() == [1, 1, 1, 1]  # heads agree by a hair
