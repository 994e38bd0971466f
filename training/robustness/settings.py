"""What ``dhat eval`` was asked for, checked where the CLI's values enter, and the error it refuses with."""

from __future__ import annotations

from dataclasses import dataclass, replace

from dhat_serve.contract import MERGED, parse_mode
from training.robustness.adaptive import is_system_attack
from training.robustness.suite import SQUARE_QUERIES, STRONG_PRESET, expand_attacks, parse_attack

ATTACK_PRECISIONS = ("fp32", "tf32")
PRIMARY_COMPARISONS = ("merged-main", "merged-second")

WORST_CASE = "worst-case"
"""Each mode's per-image worst case over every attack of the report (clean when it was asked for, as the strong
preset always does, and the transfer attack when it ran): an image counts as correct only if it is correct under all
of them. A column of every report."""
SANITY_EPS = 1.0
SANITY_ATTACK = "margin100"
"""The large-eps sanity row (Carlini et al. 2019, §5.2 "verify that unbounded attacks reach 100 % success"): at
eps = 1 any image is reachable, so an attack that leaves any accuracy there is failing (gradient masking)."""


class EvaluationError(RuntimeError):
    """An evaluation that must not produce numbers (tampered artifact, twin that does not match)."""


@dataclass(frozen=True)
class EvalSettings:
    """What ``dhat eval`` was asked for; checked here, where the CLI's values enter.

    ``modes`` None is every mode the artifact has; ``n`` None is the whole test split; ``device`` None is CUDA when
    torch sees one, else CPU.
    ``attack_precision`` "tf32" lets CUDA craft the adversarial examples with TF32 convolutions and matmuls
    (PyTorch's own default for cuDNN convolutions, several times faster on Ampere and later); the twin check and
    every score stay exact fp32, so only how the examples were found changes, never how they are counted.
    """

    modes: tuple[str, ...] | None = None
    attacks: tuple[str, ...] = ("clean", "pgd20")
    eps: float | None = None
    n: int | None = None
    batch_size: int = 250
    seed: int = 0
    square_queries: int = SQUARE_QUERIES  # as AutoAttack's standard version runs Square
    transfer: bool = True
    curve: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)  # multiples of eps for robustness.png
    data_dir: str | None = None
    device: str | None = None
    attack_precision: str = "fp32"
    agree_targets: int | None = None  # the agree attack's target classes; None: min(9, classes - 1), as APGD-T
    corruptions: bool = True  # shifted traffic: accuracy and head disagreement on corrupted test images
    primary: str | None = None  # "merged-main@ATTACK"; None: scoring.default_primary's rule; "none": all secondary
    sanity: bool | None = None  # the large-eps row (SANITY_ATTACK at SANITY_EPS); None: with the strong preset

    def __post_init__(self) -> None:
        for m in self.modes or ():
            parse_mode(m)
        if self.primary not in (None, "none"):
            name, _, attack = self.primary.partition("@")
            allowed = (*expand_attacks(self.attacks, dual=True), WORST_CASE)
            if name not in PRIMARY_COMPARISONS or attack not in allowed:
                raise ValueError(
                    f"--primary {self.primary!r}: use COMPARISON@ATTACK with a comparison of "
                    f"{', '.join(PRIMARY_COMPARISONS)} and one of the attacks asked for or {WORST_CASE} "
                    f"({', '.join(self.attacks)}), e.g. merged-main@{WORST_CASE}"
                )
        if self.agree_targets is not None and self.agree_targets < 1:
            raise ValueError(f"--agree-targets must be >= 1, got {self.agree_targets}")
        for a in self.attacks:
            if a != STRONG_PRESET:
                parse_attack(a)
        if self.eps is not None and not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"--eps must be in [0, 1] (e.g. 8/255), got {self.eps}")
        if (self.n is not None and self.n < 1) or self.batch_size < 1:
            raise ValueError(f"--n and --batch-size must be >= 1, got {self.n}, {self.batch_size}")
        if self.device is not None and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"--device {self.device!r}: use cpu, cuda or cuda:N")
        if self.attack_precision not in ATTACK_PRECISIONS:
            raise ValueError(f"--attack-precision {self.attack_precision!r}: use {' or '.join(ATTACK_PRECISIONS)}")


def for_artifact(settings: EvalSettings, graphs: tuple[str, ...]) -> EvalSettings:
    """``settings`` with its modes resolved against the artifact's graphs (``modes`` None: all of them), refused
    where they ask for what a single-head artifact does not have (another mode, an attack on the three outputs)."""
    modes = settings.modes or graphs
    attacks = expand_attacks(settings.attacks, dual=MERGED in graphs)
    missing = [m for m in modes if m not in graphs]
    if missing:
        raise EvaluationError(
            f"--modes {','.join(missing)}: this artifact has only {', '.join(graphs)} (a single-head "
            f"model: its second head and merger were never trained); use --modes {','.join(graphs)}"
        )
    system = [a for a in attacks if is_system_attack(a)]
    if system and MERGED not in graphs:
        raise EvaluationError(
            f"--attacks {','.join(system)} attack the dual head's three outputs together; this "
            f"artifact has only {', '.join(graphs)}"
        )
    sanity = STRONG_PRESET in settings.attacks if settings.sanity is None else settings.sanity
    return replace(
        settings, modes=tuple(modes), attacks=attacks, transfer=settings.transfer and len(modes) > 1, sanity=sanity
    )
