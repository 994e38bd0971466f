import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dhat_serve.manifest import ArtifactError, load_manifest
from export.artifact import ExportError, export_artifact
from export.graphs import initializer_names
from export.sample import make_checkpoint
from training.checkpoints import load_checkpoint
from training.models.registry import ModelConfig


def _check_graphs_match_torch(ckpt, artifact, in_ch, size):
    net, _, _ = load_checkpoint(ckpt)
    net.eval()
    for batch in (1, 7):
        x = torch.rand(batch, in_ch, size, size)
        with torch.no_grad():
            merged, main, second = net.forward_all(x)
        expected = {"main": [main], "second": [second], "merged": [merged, main, second]}
        for mode, outs in expected.items():
            session = ort.InferenceSession(str(artifact / f"{mode}.onnx"), providers=["CPUExecutionProvider"])
            got = session.run(None, {"images": x.numpy()})
            assert len(got) == len(outs)
            for g, e in zip(got, outs, strict=True):
                assert g.shape == (batch, 10)
                np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=0)


def test_symmetric_export_matches_torch_at_batch_1_and_7(symmetric_artifact):
    ckpt, artifact = symmetric_artifact
    _check_graphs_match_torch(ckpt, artifact, 1, 8)


@pytest.mark.slow
def test_asymmetric_export_matches_torch(tmp_path):
    cfg = ModelConfig(arch="resnet34-w8", layout="asymmetric", in_channels=3, input_size=8)
    ckpt = make_checkpoint(tmp_path / "ckpt", cfg)
    export_artifact(ckpt, tmp_path / "artifact", parity_n=8)
    _check_graphs_match_torch(ckpt, tmp_path / "artifact", 3, 8)


def test_each_head_graph_holds_only_its_own_weights(symmetric_artifact):
    _, artifact = symmetric_artifact
    main, second, merged = (initializer_names(artifact / f"{m}.onnx") for m in ("main", "second", "merged"))
    assert any("main_head" in n for n in main) and not any("second_head" in n or "merger" in n for n in main)
    assert any("second_head" in n for n in second) and not any("main_head" in n or "merger" in n for n in second)
    assert all(any(p in " ".join(merged) for p in (part,)) for part in ("main_head", "second_head", "merger"))


def test_graphs_are_self_contained_with_dynamic_batch_and_named_io(symmetric_artifact):
    _, artifact = symmetric_artifact
    assert not list(artifact.glob("*.data"))
    model = onnx.load(str(artifact / "merged.onnx"))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["logits", "main_logits", "second_logits"]
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param and not dim0.dim_value


def test_manifest_records_parity_hashes_and_provenance(symmetric_artifact):
    ckpt, artifact = symmetric_artifact
    m = load_manifest(artifact)
    assert m.input_shape == (1, 8, 8) and m.num_classes == 10 and m.precision == "fp32"
    for mode in ("main", "second", "merged"):
        g = m.modes[mode]
        assert g.parity["max_abs_diff"] <= 1e-4 and g.parity["clean"]["argmax_agreement"] == 1.0
        assert g.parity["pgd"]["n"] == 16 and g.opset == 18
    assert m.provenance["checkpoint_sha256"] and m.provenance["recipe"] == "test"
    assert m.architecture["parameters"]["merger"] == 28898


def test_a_flipped_byte_fails_verification_naming_the_file(tmp_path, symmetric_artifact):
    import shutil

    _, artifact = symmetric_artifact
    for name in ("main.onnx", "second.onnx", "merged.onnx"):
        copy = tmp_path / name.replace(".", "_")
        shutil.copytree(artifact, copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        with pytest.raises(ArtifactError, match=f"{name}: sha256 does not match"):
            load_manifest(copy)


def test_unknown_schema_version_is_refused(tmp_path, symmetric_artifact):
    import shutil

    _, artifact = symmetric_artifact
    shutil.copytree(artifact, tmp_path / "a")
    doc = json.loads((tmp_path / "a/manifest.json").read_text())
    doc["schema_version"] = 99
    (tmp_path / "a/manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match="schema version 99 is not supported"):
        load_manifest(tmp_path / "a")


def test_export_refuses_a_checkpoint_without_a_trained_merger(tmp_path):
    cfg = ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1, input_size=8)
    ckpt = make_checkpoint(tmp_path / "ckpt", cfg, trained={"main_head": True, "second_head": True, "merger": False})
    with pytest.raises(ExportError, match="no trained merger.*run stage 3"):
        export_artifact(ckpt, tmp_path / "artifact")
    assert not (tmp_path / "artifact").exists()


def test_fp16_export_stays_within_its_tolerance(tmp_path):
    cfg = ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1, input_size=8)
    ckpt = make_checkpoint(tmp_path / "ckpt", cfg)
    m = export_artifact(ckpt, tmp_path / "artifact", fp16=True, parity_n=8)
    assert m.precision == "fp16"
    for g in m.modes.values():
        assert g.parity["max_abs_diff"] <= g.parity["tolerance"] == 5e-2


def test_the_graphs_follow_what_was_trained(tmp_path):
    from export.artifact import ExportError, graphs_to_export

    assert graphs_to_export(tmp_path, {"main_head": True, "second_head": True, "merger": True}) == (
        "main",
        "second",
        "merged",
    )
    assert graphs_to_export(tmp_path, {"main_head": True, "second_head": False, "merger": False}) == ("main",)
    with pytest.raises(ExportError, match="no trained merger, so merged.onnx cannot be made; run stage 3"):
        graphs_to_export(tmp_path, {"main_head": True, "second_head": True, "merger": False})
    with pytest.raises(ExportError, match="a trained merger but no trained second head"):
        graphs_to_export(tmp_path, {"main_head": True, "second_head": False, "merger": True})
    with pytest.raises(ExportError, match="no trained main head .stage 1 trained 0 epochs without --init"):
        graphs_to_export(tmp_path, {"main_head": False, "second_head": False, "merger": False})
