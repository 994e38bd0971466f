"""Every result table in README.md and docs/*.md is what its committed per-image data give
(scripts/readme_numbers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from readme_numbers import BLOCK, documents, refresh, stale  # noqa: E402


def test_the_checked_files_are_the_readme_and_every_docs_page():
    files = documents()
    assert files[0] == ROOT / "README.md"
    assert set(files[1:]) == set((ROOT / "docs").glob("*.md")) and files[1:], "the results live in docs/*.md"


def test_every_table_is_rederived_from_its_committed_report():
    texts = {path.name: path.read_text() for path in documents()}
    blocks = [block for text in texts.values() for block in BLOCK.findall(text)]
    assert len(blocks) >= 4, "the digits and Fashion-MNIST tables are generated blocks"
    assert {path for _, path, _ in blocks} >= {
        "experiments/digits/digits-report.json",
        "experiments/fashion-mnist-cpu/summary.json",
    }
    assert {name: stale(text) for name, text in texts.items()} == {name: [] for name in texts}


def test_a_changed_number_is_caught_and_refresh_puts_it_back():
    text = next(t for t in (path.read_text() for path in documents()) if BLOCK.search(t))
    kind, path, body = BLOCK.findall(text)[0]
    digits = [i for i, ch in enumerate(body) if ch.isdigit()]
    tampered_body = body[: digits[0]] + str((int(body[digits[0]]) + 1) % 10) + body[digits[0] + 1 :]
    tampered = text.replace(body, tampered_body, 1)
    assert stale(tampered) and "differs from the file" in stale(tampered)[0]
    assert refresh(tampered) == text
