"""The method table: one description per method, read by recipes, stages and --plan."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from training.attacks import PGDConfig, pgd
from training.losses import trades_loss
from training.methods import METHODS, method_of
from training.models.dual_head import ModeView
from training.plan import recipe_plan
from training.recipes import RecipeError, load_recipe


def test_the_table_is_the_authors_code():
    expected = {
        "natural": (None, None, "clean"),
        "sat": ("uniform", "ce", "robust"),
        "trades": ("normal", "kl", "robust"),
        "mart": ("normal", "ce", "robust"),
    }
    assert {n: (m.attack_start, m.attack_loss, m.select) for n, m in METHODS.items()} == expected


@pytest.mark.parametrize(
    "method, key, value",
    [
        ("trades", "random_start", "uniform"),
        ("trades", "loss", "ce"),
        ("mart", "loss", "kl"),
        ("sat", "random_start", "normal"),
    ],
)
def test_a_recipe_setting_what_the_method_fixes_is_refused_by_name(method, key, value):
    with pytest.raises(
        RecipeError,
        match=rf"stage2\.attack\.{key}: method '{method}' trains with {key} .* not "
        rf"'{value}'; remove the key",
    ):
        load_recipe("digits", [f"stage2.method={method}", f"stage2.attack.{key}={value}"])


def test_a_recipe_repeating_the_methods_own_value_is_accepted_and_plan_shows_the_effective_attack():
    recipe = load_recipe("digits", ["stage2.method=mart", "stage2.attack.loss=ce"])
    stages = recipe_plan(recipe)["stages"]
    assert (stages[1]["attack_start"], stages[1]["attack_loss"]) == ("normal", "ce")
    assert recipe.stage2.attack.random_start == "normal"
    natural = recipe_plan(load_recipe("digits-natural"))["stages"][0]
    assert natural["method"] == "natural" and natural["attack_start"] is None and natural["attack_loss"] is None


def test_the_trades_loss_is_ce_plus_beta_kl_on_its_own_attack(tiny_net):
    torch.manual_seed(0)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    view = ModeView(tiny_net, "main")
    method = method_of("trades")
    attack = method.training_attack(PGDConfig(eps=0.05, step=0.02, steps=2))
    assert (attack.random_start, attack.loss) == ("normal", "kl")
    torch.manual_seed(1)
    got = method.loss(view, x, y, 6.0, attack)
    torch.manual_seed(1)
    x_adv = pgd(view, x, y, attack)
    torch.testing.assert_close(got, trades_loss(view(x), view(x_adv), y, 6.0))
    natural = method_of("natural")
    assert natural.training_attack(attack) is attack
    torch.testing.assert_close(natural.loss(view, x, y, 6.0, attack), F.cross_entropy(view(x), y))
    assert dataclasses.replace(attack, loss="ce") == method_of("mart").training_attack(attack)
