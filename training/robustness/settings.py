"""What ``dhat eval`` was asked for, checked where the CLI's values enter, and the error it refuses with."""

from __future__ import annotations

from dataclasses import dataclass

from dhat_serve.contract import MODES, parse_mode

ATTACK_PRECISIONS = ("fp32", "tf32")
from training.robustness.suite import SQUARE_QUERIES, parse_attack


class EvaluationError(RuntimeError):
    """An evaluation that must not produce numbers (tampered artifact, twin that does not match)."""


@dataclass(frozen=True)
class EvalSettings:
    """What ``dhat eval`` was asked for; checked here, where the CLI's values enter.

    ``n`` None is the whole test split; ``device`` None is CUDA when torch sees one, else CPU.
    ``attack_precision`` "tf32" lets CUDA craft the adversarial examples with TF32 convolutions and matmuls
    (PyTorch's own default for cuDNN convolutions, several times faster on Ampere and later); the twin check and
    every score stay exact fp32, so only how the examples were found changes, never how they are counted.
    """

    modes: tuple[str, ...] = MODES
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

    def __post_init__(self) -> None:
        for m in self.modes:
            parse_mode(m)
        for a in self.attacks:
            parse_attack(a)
        if self.eps is not None and not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"--eps must be in [0, 1] (e.g. 8/255), got {self.eps}")
        if (self.n is not None and self.n < 1) or self.batch_size < 1:
            raise ValueError(f"--n and --batch-size must be >= 1, got {self.n}, {self.batch_size}")
        if self.device is not None and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"--device {self.device!r}: use cpu, cuda or cuda:N")
        if self.attack_precision not in ATTACK_PRECISIONS:
            raise ValueError(f"--attack-precision {self.attack_precision!r}: use {' or '.join(ATTACK_PRECISIONS)}")
