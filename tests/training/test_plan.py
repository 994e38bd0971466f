"""`dhat train RECIPE --plan` for every built-in recipe, checked against the paper's text (§III-C, §IV-A, §V)."""

from __future__ import annotations

import dataclasses
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


SWITCH_DESIGNS = (
    "fashion-mnist-cpu-natural-trades",
    "fashion-mnist-cpu-pgd2-trades",
    "fashion-mnist-cpu-robust-natural",
    "fashion-mnist-cpu-natural-sat",
    "fashion-mnist-cpu-pgd2-sat",
)


def test_switch_designs_keep_the_fashion_mnist_cpu_scale():
    # issue 36: same network, data subset, eps and budget rules as fashion-mnist-cpu; only the methods differ
    base = load_recipe("fashion-mnist-cpu")
    for name in SWITCH_DESIGNS + (
        "fashion-mnist-cpu-natural",
        "fashion-mnist-cpu-trades-1",
        "fashion-mnist-cpu-trades-3",
    ):
        r = load_recipe(name)
        assert (r.data, r.model, r.validation) == (base.data, base.model, base.validation), name
        assert r.stage3.attack == base.stage3.attack, name


def test_natural_trades_follows_table_two():
    # §V: a naturally trained (CE) main head picked by clean accuracy, then "a second head and a lightweight CNN
    # ... both of them using PGD10 adversarial training"; stage 1 is the natural single head of the frontier
    s1, s2, s3 = plan("fashion-mnist-cpu-natural-trades")["stages"]
    assert (s1["method"], s1["select"]) == ("natural", "clean")
    assert (s2["method"], s2["steps"], s2["eps"], s2["copy_main"]) == ("trades", 10, 0.1, False)
    assert (s3["method"], s3["beta"]) == ("trades", 2.0)
    assert load_recipe("fashion-mnist-cpu-natural").stage1 == load_recipe("fashion-mnist-cpu-natural-trades").stage1


def test_pgd2_main_head_has_half_the_eps_and_a_quarter_step():
    # §V: PGD-2 at eps 4/255 with a 2/255 step against 8/255: the same ratios against fashion-mnist-cpu's eps 0.1
    s1, s2, _ = plan("fashion-mnist-cpu-pgd2-trades")["stages"]
    eps = load_recipe("fashion-mnist-cpu-pgd2-trades").validation.attack.eps
    assert (s1["eps"], s1["step"], s1["steps"]) == (eps / 2, eps / 4, 2)
    assert (s2["eps"], s2["steps"]) == (eps, 10)


def test_sat_variants_differ_from_their_trades_designs_only_in_the_method():
    # Table II's 'Natural (DH w/ SAT)' and 'SAT (DH w/ PGD2)': the TRADES designs with SAT where the row says SAT
    natural_sat, natural_trades = (
        load_recipe("fashion-mnist-cpu-natural-sat"),
        load_recipe("fashion-mnist-cpu-natural-trades"),
    )
    assert natural_sat.stage1 == natural_trades.stage1 and natural_sat.stage3 == natural_trades.stage3
    assert dataclasses.replace(natural_sat.stage2, method="trades", beta=6) == natural_trades.stage2
    pgd2_sat, pgd2_trades = load_recipe("fashion-mnist-cpu-pgd2-sat"), load_recipe("fashion-mnist-cpu-pgd2-trades")
    for sat, trades in ((pgd2_sat.stage1, pgd2_trades.stage1), (pgd2_sat.stage2, pgd2_trades.stage2)):
        assert dataclasses.replace(sat, method="trades", beta=6) == trades
    s1, s2, s3 = plan("fashion-mnist-cpu-pgd2-sat")["stages"]
    assert (s1["method"], s1["eps"], s1["steps"], s2["method"], s2["steps"]) == ("sat", 0.05, 2, "sat", 10)
    assert (s3["method"], s3["beta"]) == ("trades", 2.0)


def test_the_projects_own_design_fine_tunes_a_copy_of_the_robust_head_on_clean_images():
    s1, s2, _ = plan("fashion-mnist-cpu-robust-natural")["stages"]
    assert load_recipe("fashion-mnist-cpu-robust-natural").stage1 == load_recipe("fashion-mnist-cpu").stage1
    assert (s2["method"], s2["copy_main"], s2["select"], s2["start_from"]) == ("natural", True, "clean", "best")


def test_trades_alternatives_differ_from_the_equal_compute_baseline_only_in_beta():
    base = load_recipe("fashion-mnist-cpu-trades")
    for beta in (1, 3):
        r = load_recipe(f"fashion-mnist-cpu-trades-{beta}")
        assert r.stage1.beta == beta and r.stage1.epochs == base.stage1.epochs == 12
        assert dataclasses.replace(r.stage1, beta=base.stage1.beta) == base.stage1
        assert r.stage2.epochs == r.stage3.epochs == 0
