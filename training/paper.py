"""What the paper reports for each built-in recipe: its table row and numbers, to set a result beside.

Numbers are accuracies in % on the CIFAR test sets at eps = 8/255, copied from Table I (CIFAR-10,
WRN-34-10: natural, PGD-40, PGD-100, APGD-DLR-T, AutoAttack per head and for the final model) and
Table II (CIFAR-100, ResNet-34 + revised ResNet-18: natural, PGD-20, PGD-100 with 5 restarts,
AutoAttack for the final model; a head's numbers where the table has its standalone baseline).
``attacks`` is the ``dhat eval --attacks`` list that measures the same columns: Table I's PGD steps
are 2.5 * eps / K (§IV), Table II's are 1/255 (§V: "the step size of PGD ... is set to 1/255").
A recipe that follows a row at another scale (Fashion-MNIST on 2 cores) names the row with no numbers
(``reported: {}``): CIFAR's accuracies say nothing about it, so it is evaluated by the default suite.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dhat_serve.contract import MODES

TABLE_I_ATTACKS = ("clean", "pgd40", "pgd100", "apgd-dlr-t", "autoattack")
TABLE_II_ATTACKS = ("clean", "pgd20@1/255", "pgd100x5@1/255", "autoattack")


@dataclass(frozen=True)
class PaperRow:
    """One recipe's place in the paper: table, rows, the attacks of its columns, reported accuracies (%)."""

    table: str
    rows: str
    attacks: tuple[str, ...]
    reported: dict[str, tuple[float, ...]] = field(default_factory=dict)  # mode -> one number per attack

    @property
    def scaled(self) -> bool:
        """True for a row followed at another scale: its design, not its numbers."""
        return not self.reported

    def numbers(self, mode: str) -> dict[str, float]:
        """``{attack: accuracy %}`` the paper reports for ``mode`` (empty when the table has no such cell)."""
        return dict(zip(self.attacks, self.reported.get(mode, ()), strict=False))


TABLE_ATTACKS = {"I": TABLE_I_ATTACKS, "II": TABLE_II_ATTACKS}
TABLES_FILE = Path(__file__).with_name("paper_tables.yaml")


def load_paper(path: Path = TABLES_FILE) -> dict[str, PaperRow]:
    """Recipe name -> its row of the paper, from ``paper_tables.yaml`` (numbers copied from Tables I and II)."""
    doc = yaml.safe_load(path.read_text())
    rows = {}
    for name, entry in doc.items():
        attacks = TABLE_ATTACKS[entry["table"]]
        reported = {mode: tuple(float(v) for v in values) for mode, values in (entry["reported"] or {}).items()}
        for mode, values in reported.items():
            if mode not in MODES or len(values) != len(attacks):
                raise ValueError(f"{path}: {name}.{mode} needs one number per attack ({', '.join(attacks)})")
        rows[name] = PaperRow(entry["table"], str(entry["rows"]), attacks, reported)
    return rows


@functools.cache
def paper_rows() -> dict[str, PaperRow]:
    """Recipe name -> its row of the paper, read once on first use (never at import); the digits recipes
    are ours and have none."""
    return load_paper()


def evaluation_command(recipe: str) -> str:
    """The ``dhat eval`` line that measures the paper's columns for ``recipe`` (whole test split)."""
    row = paper_rows().get(recipe)
    attacks = ",".join(row.attacks) if row and not row.scaled else "clean,pgd20,autoattack"
    # + Square (black-box, 5,000 queries as AutoAttack runs it): the gradient-masking check beside transfer
    return f"dhat eval artifacts/{recipe} --run runs/{recipe} --attacks {attacks},square"
