"""`dhat train RECIPE --plan` for every built-in recipe, checked against the paper's text (§III-C, §IV-A, §V)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dhat_serve.cli import app
from training.plan import lr_runs, recipe_plan
from training.recipes import list_recipes, load_recipe

BESTLAST = ("cifar10-trades-6-bestlast", "cifar10-trades-3-bestlast", "cifar10-sat-bestlast", "cifar10-mart-6-bestlast")


def plan(name: str) -> dict:
    return recipe_plan(load_recipe(name))


def runs(lr: list[float]) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    for v in lr:
        if out and abs(out[-1][0] - v) < 1e-12:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return [(round(v, 8), k) for v, k in out]


def test_plan_json_shape_through_the_cli():
    result = CliRunner().invoke(app, ["train", "cifar10-trades-6-3", "--plan", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["recipe"] == "cifar10-trades-6-3" and [s["stage"] for s in doc["stages"]] == [1, 2, 3]
    s1 = doc["stages"][0]
    assert {"stage", "method", "epochs", "lr", "start_from", "select", "beta", "eps", "step", "steps"} <= s1.keys()
    assert len(s1["lr"]) == s1["epochs"] == 100 and s1["start_from"] is None
    assert lr_runs(s1["lr"]) == "0.1 x74 (1-74), 0.01 x15 (75-89), 0.001 x10 (90-99), 0.0001 x1 (100-100)"
    table = CliRunner().invoke(app, ["train", "cifar10-trades-6-3", "--plan"])
    assert table.exit_code == 0 and "0.1 x74 (1-74)" in table.output and "stage 2 best" in table.output


@pytest.mark.parametrize("name", [n for n in list_recipes() if n.startswith("cifar10-trades")])
def test_trades_main_head_follows_trades(name):
    # §IV-A 1: 100 epochs, SGD 0.1, decayed by 1/10 at the 75th, 90th and 100th epochs; PGD-10, eps 8/255, step 2/255
    s1 = plan(name)["stages"][0]
    assert s1["method"] == "trades" and s1["epochs"] == 100
    assert runs(s1["lr"]) == [(0.1, 74), (0.01, 15), (0.001, 10), (0.0001, 1)]
    assert (round(s1["eps"] * 255, 6), round(s1["step"] * 255, 6), s1["steps"]) == (8, 2, 10)
    assert s1["select"] == "robust"


@pytest.mark.parametrize("name", BESTLAST)
def test_best_last_rows_merge_the_last_second_head(name):
    # §IV-A 3: the second head is the "robust overfitted" one: stage 3 must start from stage2/last
    s2, s3 = plan(name)["stages"][1:]
    assert s2["copy_main"] and s2["start_from"] == "best"  # a copy of the best main head
    assert s3["start_from"] == "last"


def test_trades_best_last_second_heads_continue_the_trades_schedule():
    # best epochs 76 and 78, 15 more epochs each (91 and 93): TRADES' decay at the 90th epoch falls inside
    assert runs(plan("cifar10-trades-6-bestlast")["stages"][1]["lr"]) == [(0.01, 13), (0.001, 2)]  # epochs 77-89, 90-91
    assert runs(plan("cifar10-trades-3-bestlast")["stages"][1]["lr"]) == [(0.01, 11), (0.001, 4)]  # epochs 79-89, 90-93


def test_mart_best_last_continues_marts_schedule():
    # best epoch 84, 15 more (99); MART decays at 75 and 90, so 5 of them at 0.01 and 10 at 0.001
    s1, s2, _ = plan("cifar10-mart-6-bestlast")["stages"]
    assert runs(s1["lr"]) == [(0.1, 74), (0.01, 11)]
    assert runs(s2["lr"]) == [(0.01, 5), (0.001, 10)]


def test_sat_best_last():
    # §IV-A 4: 200 epochs, lr / 10 at the 100th and 150th; best at 160, second head 15 more epochs at 0.001
    s1, s2, _ = plan("cifar10-sat-bestlast")["stages"]
    assert runs(s1["lr"]) == [(0.1, 99), (0.01, 50), (0.001, 51)]
    assert runs(s2["lr"]) == [(0.001, 15)]


@pytest.mark.parametrize("name", list_recipes())
def test_every_merger_stage_is_trades_and_natural_stages_select_by_clean_accuracy(name):
    stages = plan(name)["stages"]
    for s in stages:
        assert s["select"] == ("clean" if s["method"] == "natural" else "robust"), (name, s["stage"])
    if name.startswith("cifar"):  # §III-C eq. (1): TRADES with 1/lambda = 2, lr 0.02, 15 epochs (§IV-A 2)
        s3 = stages[2]
        assert (s3["method"], s3["beta"], s3["epochs"], s3["lr"][0]) == ("trades", 2.0, 15, 0.02)


def test_table_two_pgd2_main_heads():
    # §V: PGD-2 adversarial training uses eps 4/255 and step 2/255
    for name in ("cifar100-asym-sat-pgd2", "cifar100-asym-trades-pgd2"):
        s1 = plan(name)["stages"][0]
        assert (round(s1["eps"] * 255, 6), round(s1["step"] * 255, 6), s1["steps"]) == (4, 2, 2)


def test_natural_main_heads_train_40_epochs_of_ce():
    for name in ("cifar100-asym-natural-sat", "cifar100-asym-natural-trades"):
        s1 = plan(name)["stages"][0]
        assert (s1["method"], s1["epochs"], s1["select"]) == ("natural", 40, "clean")


def test_lr_runs_reads_like_the_paper():
    assert lr_runs([0.1, 0.1, 0.01]) == "0.1 x2 (1-2), 0.01 x1 (3-3)"
    assert lr_runs([]) == "no epochs"


def test_plan_needs_no_data_and_json_needs_plan():
    result = CliRunner().invoke(app, ["train", "cifar100-asym-trades", "--plan", "--data-dir", "/nonexistent"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, ["train", "digits", "--json"])
    assert bad.exit_code == 2 and "--json goes with --plan" in bad.output
