"""Which graphs an artifact may have, and the request modes and default mode that follow from them."""

from __future__ import annotations

import json
import shutil

import pytest

from dhat_serve.contract import REQUEST_MODES, default_mode, served_modes
from dhat_serve.manifest import ArtifactError, load_manifest


def test_the_dual_head_serves_four_modes_and_a_single_head_main_alone():
    assert served_modes(("main", "second", "merged")) == REQUEST_MODES
    assert served_modes(("main",)) == ("main",)
    assert default_mode(("main", "second", "merged")) == "merged" and default_mode(("main",)) == "main"


def _with_graphs(src, dst, keep):
    shutil.copytree(src, dst)
    doc = json.loads((dst / "manifest.json").read_text())
    doc["modes"] = {m: g for m, g in doc["modes"].items() if m in keep}
    (dst / "manifest.json").write_text(json.dumps(doc))
    return dst


def test_a_manifest_lists_the_three_graphs_or_main_alone(symmetric_artifact, tmp_path):
    _, artifact = symmetric_artifact
    single = load_manifest(_with_graphs(artifact, tmp_path / "single", {"main"}))
    assert list(single.modes) == ["main"] and single.request_modes == ("main",) and single.default_mode == "main"
    assert load_manifest(artifact).request_modes == REQUEST_MODES
    with pytest.raises(
        ArtifactError,
        match="no graph for mode.s. merged .a dual-head artifact has main, second, "
        "merged; a single-head one main alone",
    ):
        load_manifest(_with_graphs(artifact, tmp_path / "half", {"main", "second"}))
