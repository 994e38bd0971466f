"""Shared fixtures: tiny networks so the suite runs in minutes on 2 CPU cores; the order the two workers take them.

``make test`` and ``make test-all`` run two pytest-xdist workers, one test file each at a time (``--dist loadfile``:
a module's fixtures stay in one process). Two workers with torch's two threads each would put four busy threads
on two cores, so each worker and the commands its tests start (``dhat train`` in a subprocess) use one thread.
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # set before torch is imported, so subprocesses inherit it too
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end files first: they are the longest (the digits pipeline trains for ~10 minutes), and a worker
    that starts one last would leave the other idle while it runs. Files stay whole; the order within is kept."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
