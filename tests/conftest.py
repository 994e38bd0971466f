"""Shared fixtures: tiny networks so the suite runs in minutes on 2 CPU cores."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training.models.registry import ModelConfig, create_model  # noqa: E402


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return ModelConfig(arch="wrn-10-1-s4", layout="symmetric", num_classes=10, in_channels=1, input_size=8)


@pytest.fixture
def tiny_net(tiny_cfg: ModelConfig):
    torch.manual_seed(0)
    return create_model(tiny_cfg).eval()


@pytest.fixture(scope="session")
def symmetric_artifact(tmp_path_factory):
    """(checkpoint dir, artifact dir) of a tiny exported dual-head model, shared by the whole session."""
    from export.sample import make_artifact

    return make_artifact(tmp_path_factory.mktemp("sym"))
