import pytest

from training.recipes import RecipeError, list_recipes, load_recipe


def test_every_builtin_recipe_loads():
    names = list_recipes()
    assert "digits" in names
    for name in names:
        recipe = load_recipe(name)
        if name != "digits-natural":  # the natural baseline trains no stage adversarially
            paper_beta = 6.0 if name == "digits" else 2.0  # digits: see the comment in digits.yaml
            assert recipe.stage3.method == "trades" and recipe.stage3.beta == paper_beta, name
            assert recipe.stage3.lr == 0.02 and recipe.stage3.epochs in (6, 15), name
    assert load_recipe("cifar100-asym-trades").model.layout == "asymmetric"
    assert load_recipe("cifar10-trades-6-bestlast").stage2.copy_main


def test_fractions_and_overrides():
    r = load_recipe("digits", ["stage1.attack.eps=8/255", "stage2.epochs=3", "model.layout=asymmetric"])
    assert r.stage1.attack.eps == pytest.approx(8 / 255)
    assert r.stage2.epochs == 3 and r.model.layout == "asymmetric"


def test_schedule_is_piecewise():
    r = load_recipe("digits", ["stage1.milestones=[2, 4]", "stage1.lr=0.1"])
    assert [round(r.stage1.lr_at(e), 6) for e in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


@pytest.mark.parametrize("override, message", [
    ("stage1.epochz=3", r"unknown recipe key 'stage1.epochz'; valid keys here: method, beta, epochs"),
    ("stage2.method=fgsm", r"unknown method 'fgsm'; valid methods: natural, sat, trades, mart"),
    ("stage1.attack.eps=8", r"eps must be in \[0, 1\]"),
    ("validation.attack.eps=-0.1", r"eps must be in \[0, 1\]"),
    ("data.dataset=mnist", r"unknown dataset 'mnist'"),
    ("stage1.epochs=many", r"stage1.epochs: expected a number"),
    ("stage1", r"must look like key=value"),
])
def test_bad_recipes_are_refused_naming_the_problem(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("digits", [override])


def test_unknown_recipe_lists_builtins():
    with pytest.raises(RecipeError, match="no recipe 'cifar11'.*digits"):
        load_recipe("cifar11")


def test_the_recipes_attack_block_is_the_attack_itself():
    from training.attacks import PGDConfig

    r = load_recipe("digits", ["validation.attack.restarts=2", "stage1.attack.random_start=none"])
    assert isinstance(r.validation.attack, PGDConfig) and isinstance(r.stage1.attack, PGDConfig)
    assert r.validation.attack.restarts == 2 and r.stage1.attack.random_start == "none"
    with pytest.raises(RecipeError, match="validation.attack: unknown attack loss 'l2'"):
        load_recipe("digits", ["validation.attack.loss=l2"])


def test_describe_recipes_lists_every_builtin_with_its_table_row():
    from training.recipes import describe_recipes

    rows = {r["name"]: r for r in describe_recipes()}
    assert set(rows) == set(list_recipes())
    assert rows["cifar10-trades-6-3"]["description"].startswith("Table I rows 2-3")
    assert rows["cifar10-mart-6-3"]["methods"] == ["mart", "mart", "trades"]
