"""Does a refactor train the same network? Tiny digits runs of every method, old tree vs this one, compared bitwise.

Trains the tiny digits recipe (8x8, a 5k-parameter WRN, one epoch per stage) with TRADES, with SAT then
MART, and with a natural stage 1, once in a git worktree of ``REV`` and once in this tree, each in its own
process, and compares every ``model.safetensors`` byte for byte. CPU training is deterministic here, so
any difference is a behaviour change.

    python -m benchmarks.same_weights 067bb39
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"trades": [], "sat-mart": ["stage1.method=sat", "stage2.method=mart"], "natural": ["stage1.method=natural"]}
TRAIN = """
import sys, json
sys.path.insert(0, sys.argv[1])
from training.pipeline import train_recipe
from training.recipes import load_recipe
for name, extra in json.loads(sys.argv[3]).items():
    train_recipe(load_recipe("digits", json.loads(sys.argv[4]) + extra), f"{sys.argv[2]}/{name}", device="cpu")
"""


def train_in(tree: Path, out: Path) -> None:
    """Every variant trained by the code in ``tree`` (a fresh process, that tree first on the path)."""
    import json

    from training.recipes import SMOKE

    subprocess.run(
        [sys.executable, "-c", TRAIN, str(tree), str(out), json.dumps(VARIANTS), json.dumps(list(SMOKE))],
        cwd=tree,
        check=True,
        capture_output=True,
    )


def main() -> None:
    """Train in both trees and print which weight files differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare with (e.g. the commit before a refactor)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp())
    old = work / "old-tree"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(old), args.rev], cwd=ROOT, check=True)
    try:
        train_in(old, work / "old")
        train_in(ROOT, work / "new")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    files = sorted(p.relative_to(work / "old") for p in (work / "old").rglob("model.safetensors"))
    differ = [str(f) for f in files if not filecmp.cmp(work / "old" / f, work / "new" / f, shallow=False)]
    print(
        f"{len(files) - len(differ)} of {len(files)} weight files identical" + (f"; differ: {differ}" if differ else "")
    )
    sys.exit(1 if differ or not files else 0)


if __name__ == "__main__":
    main()
