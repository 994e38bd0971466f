import pytest

from tests.helpers.checkpoints import make_artifact


@pytest.fixture(scope="session")
def symmetric_artifact(tmp_path_factory):
    return make_artifact(tmp_path_factory.mktemp("sym"))
