import numpy as np

from dhat_serve.runtime import ModelRuntime, choose_providers
from tests.helpers.checkpoints import make_artifact


def test_cpu_provider_is_used_when_asked_and_without_a_gpu(monkeypatch):
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert choose_providers("auto") == ["CPUExecutionProvider"]


def test_runtime_runs_each_mode_and_all_from_one_merged_run(tmp_path):
    _, artifact = make_artifact(tmp_path)
    rt = ModelRuntime.load(artifact, provider="cpu")
    assert all(p == ["CPUExecutionProvider"] for p in rt.providers().values())
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    merged, main, second = rt.run_all(x)
    np.testing.assert_allclose(rt.run("main", x), main, atol=1e-6)
    np.testing.assert_allclose(rt.run("second", x), second, atol=1e-6)
    np.testing.assert_allclose(rt.run("merged", x), merged, atol=1e-6)
    assert merged.shape == (3, 10)
