"""Recipes: frozen dataclasses loaded from YAML, with ``key=value`` overrides.

``load_recipe("digits", ["stage1.epochs=2"])`` reads ``training/recipes/digits.yaml`` (or a path),
applies the overrides, and builds a ``Recipe``. Every problem (an unknown key, an unknown method, an
eps outside [0, 1]) is raised here, naming the key, before any training starts. Numbers may be written
as fractions (``8/255``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.attacks import PGDConfig
from training.data import DataSpec
from training.methods import METHODS, method_of
from training.typed_yaml import RecipeError, apply_override, build

SMOKE = (
    "model.arch=wrn-10-1-s4",
    "data.image_size=8",
    "data.batch_size=128",
    "validation.n=64",
    "validation.attack.steps=2",
    "validation.attack.step=0.05",
    *(f"stage{n}.{key}" for n in (1, 2, 3) for key in ("epochs=1", "attack.steps=2", "attack.step=0.05")),
)
"""Overrides that shrink a digits recipe to a run of seconds (8x8 images, a 5k-parameter WRN, PGD-2, one epoch per
stage): a check that training, export and serving work, with no accuracy to speak of. The tests train with them,
and so does ``benchmarks.same_weights``: ``load_recipe("digits", SMOKE)``."""

RECIPE_DIR = Path(__file__).parent / "recipes"
SELECTIONS = ("robust", "clean", "last")
# fp32: as the reference TRADES / MART / robust-overfitting code trains. bf16: autocast on CUDA (training
# and the validation attack), a speed option: bf16's grid on [0.5, 1) is 1/256, so the first convolution
# sees inputs rounded by up to ~0.29/255 against a 2/255 attack step. CPU runs are fp32 either way.
PRECISIONS = ("fp32", "bf16")
VALIDATION_SOURCES = ("train", "test")


@dataclass(frozen=True)
class StageSpec:
    """One DH-AT stage: what it trains with and for how long (the paper's SGD schedule by default)."""

    method: str = "trades"
    beta: float = 6.0
    epochs: int = 100
    lr: float = 0.1
    milestones: tuple[int, ...] = (75, 90, 100)
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    attack: PGDConfig = field(default_factory=PGDConfig)  # eps / step / steps; start and loss are the method's
    init: str | None = None  # stage 1: a pre-trained single-head checkpoint to start from
    copy_main: bool = False  # stage 2: start the second head as a copy of the main head
    start_from: str = "best"  # stage 2 / 3: which checkpoint of the previous stage
    select: str = ""  # what picks ``best``: robust | clean | last; empty = the method's default (see below)
    # true: run the previous stage's lr schedule on from the epoch of the checkpoint this stage starts from
    # (best-vs-last: the second head continues the main head's training), read from the run, not assumed
    continue_schedule: bool = False
    paper_best_epoch: int | None = None  # with continue_schedule: the paper's best epoch, shown by --plan only
    keep_epochs: tuple[int, ...] = ()  # also keep these epochs' checkpoints (stageN/epoch-E) for `dhat compare`

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RecipeError(f"unknown method {self.method!r}; valid methods: {', '.join(METHODS)}")
        if self.epochs < 0 or self.lr <= 0:
            raise RecipeError(f"need epochs >= 0 and lr > 0, got {self.epochs}, {self.lr}")
        if self.start_from not in ("best", "last"):
            raise RecipeError(f"start_from must be 'best' or 'last', got {self.start_from!r}")
        if any(e < 1 or e > self.epochs for e in self.keep_epochs):
            raise RecipeError(
                f"keep_epochs are 1-based epochs of this stage (1..{self.epochs}), got {list(self.keep_epochs)}"
            )
        if any(m < 1 for m in self.milestones):
            raise RecipeError(f"milestones are 1-based epoch numbers (>= 1), got {list(self.milestones)}")
        method = method_of(self.method)
        # The attack a stage trains with is the method's (its start and loss fixed by the table), so the
        # spec holds the effective attack: --plan, the stage loop and the saved recipe all read this one.
        object.__setattr__(self, "attack", method.training_attack(self.attack))
        if not self.select:
            object.__setattr__(self, "select", method.select)  # natural: clean; adversarial methods: robust
        if self.select not in SELECTIONS:
            raise RecipeError(f"select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")

    @classmethod
    def check_raw(cls, data: dict[str, Any], prefix: str) -> None:
        """Refuse a stage whose ``attack:`` sets a start or loss its method fixes (it would be silently replaced)."""
        method = METHODS.get(data.get("method", cls.method))
        attack = data.get("attack")
        if method is None or not isinstance(attack, dict):
            return
        for key in method.overridden(attack):
            fixed = getattr(method.training_attack(PGDConfig()), key)
            raise RecipeError(
                f"{prefix}.attack.{key}: method {method.name!r} trains with {key} {fixed!r} (as its "
                f"authors' code does), not {attack[key]!r}; remove the key or choose another method"
            )

    def lr_at(self, epoch: int) -> float:
        """The learning rate of the 1-based ``epoch``: lr * gamma^(number of milestones m with epoch >= m).

        Milestones are epoch numbers as the paper and TRADES' code write them (epochs counted from 1,
        ``if epoch >= 75``): ``[75, 90, 100]`` runs epochs 75-89 at lr / 10, 90-99 at lr / 100 and the
        100th at lr / 1000 (§IV-A: "decayed by a factor of 1/10 at the 75th, 90th, and 100th epochs").
        """
        if epoch < 1:
            raise ValueError(f"epochs are counted from 1, got {epoch}")
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)

    def schedule(self) -> list[float]:
        """The learning rate of every epoch, 1 to ``epochs`` (what ``dhat train --plan`` prints)."""
        return [self.lr_at(e) for e in range(1, self.epochs + 1)]


@dataclass(frozen=True)
class ModelSpec:
    """Which architecture and layout (symmetric WRN or asymmetric ResNet) to build."""

    arch: str = "wrn-34-10"
    layout: str = "symmetric"
    second_arch: str | None = None
    normalize: bool = True  # per-channel mean/std inside the net; false for TRADES-style [0, 1] inputs


@dataclass(frozen=True)
class ValidationSpec:
    """Validation robustness each epoch, which picks the ``best`` checkpoint."""

    n: int = 1000
    attack: PGDConfig = field(default_factory=PGDConfig)
    # train: data.val_size training images held out (Rice et al.; the test set stays unseen). test: the paper's
    # "1000 CIFAR-10 test images" (§IV-A); evaluation then scores the test split minus them.
    source: str = "train"

    def __post_init__(self) -> None:
        if self.source not in VALIDATION_SOURCES:
            raise RecipeError(f"validation.source must be one of {', '.join(VALIDATION_SOURCES)}, got {self.source!r}")


@dataclass(frozen=True)
class Recipe:
    """A whole DH-AT run: data, model, validation and the three stages, as one frozen value."""

    name: str
    seed: int = 0
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    stage1: StageSpec = field(default_factory=StageSpec)
    stage2: StageSpec = field(default_factory=StageSpec)
    stage3: StageSpec = field(
        default_factory=lambda: StageSpec(method="trades", beta=2.0, epochs=15, lr=0.02, milestones=())
    )
    precision: str = "fp32"  # or bf16 (PRECISIONS): autocast on CUDA

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise RecipeError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.stage1.continue_schedule:
            raise RecipeError("stage1.continue_schedule must be false: stage 1 has no previous stage to continue")

    def lr_at(self, n: int, epoch: int, start_epoch: int = 0) -> float:
        """Stage ``n``'s learning rate in its ``epoch`` (1-based). A ``continue_schedule`` stage runs stage
        n-1's schedule on from ``start_epoch``, the 1-based epoch of the checkpoint it starts from."""
        spec = self.stage(n)
        if spec.continue_schedule:
            return self.stage(n - 1).lr_at(start_epoch + epoch)
        return spec.lr_at(epoch)

    def stage(self, n: int) -> StageSpec:
        """The spec of stage ``n`` (1, 2 or 3)."""
        return (self.stage1, self.stage2, self.stage3)[n - 1]


def recipe_path(name_or_path: str) -> Path:
    """A YAML path as given, else the built-in recipe of that name, else a RecipeError listing them."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    builtin = RECIPE_DIR / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin
    raise RecipeError(
        f"no recipe {name_or_path!r}: not a YAML file and not one of the built-in recipes ({', '.join(list_recipes())})"
    )


def list_recipes() -> list[str]:
    """Names of the built-in recipes (``training/recipes/*.yaml``)."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def recipe_description(path: Path) -> str:
    """The comment block at the top of a recipe file: which table row of the paper it reproduces."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def describe_recipes() -> list[dict[str, Any]]:
    """One row per built-in recipe: name, dataset, architecture, each stage's method, and its description."""
    rows = []
    for name in list_recipes():
        recipe = load_recipe(name)
        rows.append(
            {
                "name": name,
                "dataset": recipe.data.dataset,
                "arch": recipe.model.arch,
                "layout": recipe.model.layout,
                "methods": [recipe.stage(n).method for n in (1, 2, 3)],
                "description": recipe_description(recipe_path(name)),
            }
        )
    return rows


def recipe_dict(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The recipe's YAML as a dict with ``overrides`` applied (before any type checks)."""
    data = yaml.safe_load(recipe_path(name_or_path).read_text()) or {}
    data.setdefault("name", Path(name_or_path).stem)
    for override in overrides:
        apply_override(data, override)
    return data


def load_recipe(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """A checked ``Recipe`` from a built-in name or a YAML path, with ``key=value`` overrides applied."""
    return build(Recipe, recipe_dict(name_or_path, overrides))


def with_flags(
    recipe: Recipe,
    *,
    init: str | None = None,
    finetune_init: bool = False,
    copy_main: bool = False,
    data_dir: str | None = None,
) -> Recipe:
    """The recipe with ``dhat train``'s typed flags applied as values (never re-parsed as YAML text).

    ``init`` is used as is (stage 1 trains 0 epochs: §III-C, "the main head can also be directly loaded from a
    pre-trained model without any modifications, in which case only one head requires training") unless
    ``finetune_init`` keeps the recipe's stage-1 epochs.
    """
    if init is not None:
        epochs = recipe.stage1.epochs if finetune_init else 0
        recipe = dataclasses.replace(recipe, stage1=dataclasses.replace(recipe.stage1, init=init, epochs=epochs))
    if copy_main:
        recipe = dataclasses.replace(recipe, stage2=dataclasses.replace(recipe.stage2, copy_main=True))
    if data_dir is not None:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, data_dir=data_dir))
    return recipe


METHOD_FIXED = ("random_start", "loss")
"""Attack keys of a training stage that its method fixes (``training.methods``)."""


def load_saved_recipe(path: Path) -> Recipe:
    """A run's own ``recipe.yaml``: stage attacks' method-fixed keys are dropped, since they were written by
    ``dhat train`` (runs saved before the method table held the PGD defaults there), not set by a user."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for n in (1, 2, 3):
        attack = (data.get(f"stage{n}") or {}).get("attack")
        if isinstance(attack, dict):
            for key in METHOD_FIXED:
                attack.pop(key, None)
    return build(Recipe, data)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """Plain dict (lists, not tuples) for saving the resolved recipe as YAML."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(recipe))
