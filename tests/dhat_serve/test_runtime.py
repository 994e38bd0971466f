import numpy as np

from dhat_serve.runtime import ModelRuntime, choose_providers


def test_cpu_provider_is_used_when_asked_and_without_a_gpu(monkeypatch):
    assert choose_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert choose_providers("auto") == ["CPUExecutionProvider"]


def test_runtime_runs_each_mode_and_all_from_one_merged_run(symmetric_artifact):
    _, artifact = symmetric_artifact
    rt = ModelRuntime.load(artifact, provider="cpu")
    assert all(p == ["CPUExecutionProvider"] for p in rt.providers().values())
    x = np.random.default_rng(0).random((3, 1, 8, 8), dtype=np.float32)
    outputs = rt.run("all", x)
    assert list(outputs) == ["logits", "main_logits", "second_logits"]
    merged, main, second = outputs["logits"], outputs["main_logits"], outputs["second_logits"]
    np.testing.assert_allclose(rt.run("main", x)["logits"], main, atol=1e-6)
    np.testing.assert_allclose(rt.run("second", x)["logits"], second, atol=1e-6)
    np.testing.assert_allclose(rt.run("merged", x)["logits"], merged, atol=1e-6)
    assert merged.shape == (3, 10)


def test_predict_in_chunks_equals_one_run(symmetric_artifact):
    _, artifact = symmetric_artifact
    rt = ModelRuntime.load(artifact, provider="cpu")
    x = np.random.default_rng(1).random((7, 1, 8, 8), dtype=np.float32)
    whole, chunked = rt.run("all", x), rt.predict("all", x, batch_size=3)
    assert list(chunked) == list(whole)
    for name in whole:
        np.testing.assert_allclose(chunked[name], whole[name], atol=1e-6)


def test_each_worker_takes_a_gpu_in_turn(monkeypatch):
    from dhat_serve.config import ServeConfig
    from dhat_serve.runtime import gpu_count, worker_device

    assert [worker_device(i, (0, 1)) for i in (1, 2, 3, 4)] == [0, 1, 0, 1]
    assert worker_device(None, (3,)) == 3 and worker_device(2, ()) == 0
    assert ServeConfig(gpus="2,3").gpu_ids(8) == (2, 3) and ServeConfig().gpu_ids(2) == (0, 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert gpu_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpu_count() == 0
    try:
        ServeConfig(gpus="a").gpu_ids(1)
    except ValueError as exc:
        assert "DHAT_GPUS='a'" in str(exc)
    else:
        raise AssertionError("DHAT_GPUS=a accepted")


def test_cuda_sessions_get_their_gpu_and_tf32_off_only_when_exact(monkeypatch, tmp_path):
    """ORT's CUDA provider runs fp32 convolutions in TF32 by default; evaluation asks for exact fp32."""
    import dhat_serve.runtime as runtime

    seen: list = []
    monkeypatch.setattr(
        runtime.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    monkeypatch.setattr(runtime.ort, "preload_dlls", lambda: None, raising=False)
    monkeypatch.setattr(runtime.ort, "InferenceSession", lambda path, sess_options, providers: seen.append(providers))
    runtime.open_sessions({"main": tmp_path / "main.onnx"}, provider="cuda", device_id=1)
    runtime.open_sessions({"main": tmp_path / "main.onnx"}, provider="cuda", device_id=1, exact_fp32=True)
    assert seen == [
        [("CUDAExecutionProvider", {"device_id": "1"}), "CPUExecutionProvider"],
        [("CUDAExecutionProvider", {"device_id": "1", "use_tf32": "0"}), "CPUExecutionProvider"],
    ]
