import json
from pathlib import Path

import pytest

from training.recipes import RecipeError, list_recipes, load_recipe


def test_every_builtin_recipe_loads():
    names = list_recipes()
    assert "digits" in names
    for name in names:
        recipe = load_recipe(name)
        if name != "digits-natural" and recipe.stage3.epochs > 0:  # single-head baselines train no merger
            # §III-C: the merger trains with TRADES at 1/lambda = 2 (digits: confirmed on validation, see digits.yaml)
            assert recipe.stage3.method == "trades" and recipe.stage3.beta == 2.0, name
            scaled = {"digits": 6, "fashion-mnist-cpu": 2, "fashion-mnist": 1}  # the paper's 15, scaled
            epochs = next((e for prefix, e in scaled.items() if name.startswith(prefix)), 15)
            assert recipe.stage3.lr == 0.02 and recipe.stage3.epochs == epochs, name
    baseline, dhat = load_recipe("fashion-mnist-cpu-trades"), load_recipe("fashion-mnist-cpu")
    measured = json.loads(
        (Path(__file__).resolve().parents[2] / "experiments/fashion-mnist-cpu/equal-compute.json").read_text()
    )
    assert baseline.stage1.epochs == measured["baseline_epochs"]  # equal compute to all three stages, as measured
    assert set(measured["stages"]) == {"1", "2", "3"} and measured["stages"]["3"]["epochs"] == dhat.stage3.epochs
    assert baseline.stage2.epochs == baseline.stage3.epochs == 0 and baseline.data == dhat.data
    assert load_recipe("cifar100-asym-trades").model.layout == "asymmetric"
    assert load_recipe("cifar10-trades-6-bestlast").stage2.copy_main


def test_fractions_and_overrides():
    r = load_recipe("digits", ["stage1.attack.eps=8/255", "stage2.epochs=3", "model.layout=asymmetric"])
    assert r.stage1.attack.eps == pytest.approx(8 / 255)
    assert r.stage2.epochs == 3 and r.model.layout == "asymmetric"


def test_schedule_is_piecewise():
    r = load_recipe("digits", ["stage1.milestones=[2, 4]", "stage1.lr=0.1"])
    assert [round(r.stage1.lr_at(e), 6) for e in range(1, 7)] == [0.1, 0.01, 0.01, 0.001, 0.001, 0.001]
    assert r.stage1.schedule() == [r.stage1.lr_at(e) for e in range(1, r.stage1.epochs + 1)]


@pytest.mark.parametrize(
    "override, message",
    [
        ("stage1.epochz=3", r"unknown recipe key 'stage1.epochz'; valid keys here: method, beta, epochs"),
        ("stage2.method=fgsm", r"unknown method 'fgsm'; valid methods: natural, sat, trades, mart"),
        ("stage1.attack.eps=8", r"eps must be in \[0, 1\]"),
        ("validation.attack.eps=-0.1", r"eps must be in \[0, 1\]"),
        ("data.dataset=svhn", r"unknown dataset 'svhn'"),
        ("precision=fp16", r"precision must be one of fp32, bf16, got 'fp16'"),
        ("stage1.epochs=many", r"stage1.epochs: expected a number"),
        ("stage1", r"must look like key=value"),
    ],
)
def test_bad_recipes_are_refused_naming_the_problem(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("digits", [override])


def test_unknown_recipe_lists_builtins():
    with pytest.raises(RecipeError, match="no recipe 'cifar11'.*digits"):
        load_recipe("cifar11")


def test_the_recipes_attack_block_is_the_attack_itself():
    from training.attacks import PGDConfig

    r = load_recipe("digits", ["validation.attack.restarts=2", "validation.attack.random_start=none"])
    assert isinstance(r.validation.attack, PGDConfig) and isinstance(r.stage1.attack, PGDConfig)
    assert r.validation.attack.restarts == 2 and r.validation.attack.random_start == "none"
    # a training stage's start is its method's (TRADES: x + 0.001 N(0, 1)); setting another is refused
    assert r.stage1.attack.random_start == "normal"
    with pytest.raises(RecipeError, match="stage1.attack.random_start: method 'trades' trains with"):
        load_recipe("digits", ["stage1.attack.random_start=none"])
    with pytest.raises(RecipeError, match="validation.attack: unknown attack loss 'l2'"):
        load_recipe("digits", ["validation.attack.loss=l2"])


def test_describe_recipes_lists_every_builtin_with_its_table_row():
    from training.recipes import describe_recipes

    rows = {r["name"]: r for r in describe_recipes()}
    assert set(rows) == set(list_recipes())
    assert rows["cifar10-trades-6-3"]["description"].startswith("Table I rows 2-3")
    assert rows["cifar10-mart-6-3"]["methods"] == ["mart", "mart", "trades"]


def test_milestones_are_one_based_epoch_numbers_as_trades_writes_them():
    # TRADES: `if epoch >= 75` with epochs from 1: the 75th epoch already runs at lr / 10
    r = load_recipe("cifar10-trades-6-3")
    assert r.stage1.lr_at(74) == pytest.approx(0.1) and r.stage1.lr_at(75) == pytest.approx(0.01)
    assert r.stage1.lr_at(90) == pytest.approx(0.001) and r.stage1.lr_at(100) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="counted from 1"):
        r.stage1.lr_at(0)
    with pytest.raises(RecipeError, match="1-based"):
        load_recipe("digits", ["stage1.milestones=[0]"])


def test_selection_rule_is_a_recipe_field_with_a_default_per_method():
    assert load_recipe("digits-natural").stage1.select == "clean"
    assert load_recipe("digits").stage1.select == "robust"
    assert load_recipe("digits", ["stage2.select=last"]).stage2.select == "last"
    with pytest.raises(RecipeError, match="select must be one of robust, clean, last"):
        load_recipe("digits", ["stage1.select=loss"])


def test_recipes_cli_sets_each_recipe_beside_the_paper():
    import json

    from typer.testing import CliRunner

    from dhat_serve.cli import app

    result = CliRunner().invoke(app, ["recipes", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    t1 = rows["cifar10-trades-6-3"]["paper"]
    assert (t1["table"], t1["rows"]) == ("I", "2-3")
    assert t1["reported"]["merged"] == {
        "clean": 86.78,
        "pgd40": 59.31,
        "pgd100": 58.92,
        "apgd-dlr-t": 56.84,
        "autoattack": 55.38,
    }
    t2 = rows["cifar100-asym-trades"]
    assert t2["paper"]["attacks"] == ["clean", "pgd20@1/255", "pgd100x5@1/255", "autoattack"]
    assert "--attacks clean,pgd20@1/255,pgd100x5@1/255,autoattack,square" in t2["evaluate"]  # + the masking check
    assert rows["digits"]["paper"] is None
    followed = rows["fashion-mnist-cpu-natural-trades"]  # a Table II design at another scale: no CIFAR numbers
    assert followed["paper"]["rows"].startswith("Natural (DH w/ TRADES)") and followed["paper"]["scaled"]
    assert followed["paper"]["reported"] == {} and followed["paper"]["attacks"] == []
    assert "--attacks clean,pgd20,autoattack,square" in followed["evaluate"]


def test_models_states_the_literal_cifar100_merger():
    import json

    from typer.testing import CliRunner

    from dhat_serve.cli import app

    result = CliRunner().invoke(app, ["models", "--num-classes", "100"], env={"COLUMNS": "200"})
    assert "4,950 class pairs, a 316,800-wide FC, 31,680,188 parameters" in result.output
    doc = json.loads(CliRunner().invoke(app, ["models", "--num-classes", "100", "--json"]).output)
    assert doc[0]["merger"] == {"design": "literal (paper Fig. 4-6)", "class_pairs": 4950, "fc_in_features": 316800}
