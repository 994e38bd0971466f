"""Every result table in the README is what its committed per-image data give (scripts/readme_numbers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from readme_numbers import BLOCK, refresh, stale  # noqa: E402


def test_every_readme_table_is_rederived_from_its_committed_report():
    readme = (ROOT / "README.md").read_text()
    blocks = BLOCK.findall(readme)
    assert len(blocks) >= 4, "the README's digits and Fashion-MNIST tables are generated blocks"
    assert stale(readme) == []


def test_a_changed_number_is_caught_and_refresh_puts_it_back():
    readme = (ROOT / "README.md").read_text()
    kind, path, body = BLOCK.findall(readme)[0]
    digits = [i for i, ch in enumerate(body) if ch.isdigit()]
    tampered_body = body[: digits[0]] + str((int(body[digits[0]]) + 1) % 10) + body[digits[0] + 1 :]
    tampered = readme.replace(body, tampered_body, 1)
    assert stale(tampered) and "differs from the file" in stale(tampered)[0]
    assert refresh(tampered) == readme
