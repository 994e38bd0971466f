import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from training.checkpoints import CheckpointError, CheckpointMeta, load_checkpoint, load_single_head, save_checkpoint
from training.models.registry import ModelConfig, create_model

TRAINED = {"main_head": True, "second_head": False, "merger": False}


def _perturb_bn(net):
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)


def test_round_trip_is_exact(tmp_path, tiny_cfg, tiny_net):
    _perturb_bn(tiny_net)
    save_checkpoint(tmp_path / "ck", tiny_net, tiny_cfg, TRAINED, meta=CheckpointMeta(epoch=3))
    net, cfg, doc = load_checkpoint(tmp_path / "ck")
    assert cfg == tiny_cfg and doc["meta"]["epoch"] == 3 and doc["trained"] == TRAINED
    for (k, a), (_, b) in zip(tiny_net.state_dict().items(), net.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(net.eval()(x, "merged"), tiny_net(x, "merged"))


def test_mismatched_config_is_refused_naming_the_first_key(tmp_path, tiny_cfg, tiny_net):
    save_checkpoint(tmp_path / "ck", tiny_net, tiny_cfg, TRAINED)
    doc = json.loads((tmp_path / "ck/config.json").read_text())
    doc["model"]["num_classes"] = 7
    (tmp_path / "ck/config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"key 'main_head\.fc\.bias' has shape \(10,\) in the weights but \(7,\)"):
        load_checkpoint(tmp_path / "ck")


def test_missing_key_is_named(tmp_path, tiny_cfg, tiny_net):
    save_checkpoint(tmp_path / "ck", tiny_net, tiny_cfg, TRAINED)
    state = load_file(str(tmp_path / "ck/model.safetensors"))
    del state["merger.fc.weight"]
    save_file(state, str(tmp_path / "ck/model.safetensors"))
    with pytest.raises(CheckpointError, match="lack key 'merger.fc.weight'"):
        load_checkpoint(tmp_path / "ck")


def test_trades_layout_pt_file_loads_as_trunk_and_main_head(tmp_path):
    """A TRADES-style single-head state dict (torch.save, plain keys, an unused sub_block1)."""
    torch.manual_seed(1)
    single = create_model(ModelConfig(arch="wrn-10-1-s4", layout="single", in_channels=1, input_size=8)).eval()
    state = {}
    for k, v in single.state_dict().items():
        state[k.split(".", 1)[1]] = v  # trunk.conv1.weight -> conv1.weight ; head.fc.bias -> fc.bias
    state["sub_block1.layer.0.conv1.weight"] = torch.zeros(1)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "trades.pt")
    dual = create_model(ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1, input_size=8)).eval()
    ignored = load_single_head(dual, tmp_path / "trades.pt")
    assert ignored == ["sub_block1.layer.0.conv1.weight"]
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(dual(x, "main"), single(x))


def test_single_head_safetensors_of_other_arch_is_refused(tmp_path):
    other = create_model(ModelConfig(arch="wrn-16-2-s8", layout="single", in_channels=1))
    save_file(other.state_dict(), str(tmp_path / "other.safetensors"))
    dual = create_model(ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1))
    with pytest.raises(CheckpointError, match="does not match this architecture"):
        load_single_head(dual, tmp_path / "other.safetensors")


def test_pickled_objects_are_refused(tmp_path, tiny_net):
    torch.save({"net": tiny_net}, tmp_path / "evil.pt")  # a whole module: needs unpickling code objects
    with pytest.raises(CheckpointError, match="weights_only"):
        load_single_head(tiny_net, tmp_path / "evil.pt")
