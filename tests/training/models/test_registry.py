import json

import pytest
import torch
from typer.testing import CliRunner

from dhat_serve.cli import app
from training.models.registry import ModelConfig, create_model, get_arch, list_archs, parameter_table


def test_wrn_34_10_has_the_published_parameter_count():
    table = parameter_table(ModelConfig(arch="wrn-34-10", layout="single"))
    assert table["total"] == 46_160_474


def test_symmetric_dual_head_adds_only_the_second_head_and_merger():
    single = parameter_table(ModelConfig(arch="wrn-34-10", layout="single"))
    dual = parameter_table(ModelConfig(arch="wrn-34-10", layout="symmetric"))
    assert dual["trunk"] == single["trunk"] and dual["main_head"] == single["main_head"]
    assert dual["total"] == single["total"] + dual["second_head"] + dual["merger"]
    assert 0.93 < dual["second_head"] / single["total"] < 0.97  # the paper: "about 0.95x more"


def test_asymmetric_second_head_is_about_half_the_main_head():
    table = parameter_table(ModelConfig(arch="resnet34", layout="asymmetric"))
    assert 0.45 < table["second_head"] / table["main_head"] < 0.55


@pytest.mark.parametrize("name", list_archs())
def test_every_architecture_builds_and_runs_every_layout(name):
    layouts = ["single", "symmetric"] + (["asymmetric"] if get_arch(name).default_second else [])
    if name in ("wrn-34-20",):
        layouts = ["single"]  # 184 M parameters: counted above, not run here
    for layout in layouts:
        net = create_model(ModelConfig(arch=name, layout=layout, num_classes=5, in_channels=3, input_size=8)).eval()
        x = torch.rand(2, 3, 8, 8)
        modes = ["main"] if layout == "single" else ["main", "second", "merged"]
        for mode in modes:
            out = net(x) if layout == "single" else net(x, mode)
            assert out.shape == (2, 5)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown architecture 'wrn-99'.*wrn-34-10"):
        ModelConfig(arch="wrn-99")
    with pytest.raises(ValueError, match="unknown layout 'triple'.*symmetric"):
        ModelConfig(arch="wrn-34-10", layout="triple")


def test_dhat_models_json_lists_parameter_counts():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    wrn = next(r for r in rows if r["arch"] == "wrn-34-10" and r["layout"] == "single")
    assert wrn["parameters"]["total"] == 46_160_474
    assert {r["layout"] for r in rows if r["arch"] == "resnet34"} == {"single", "symmetric", "asymmetric"}


def test_dhat_models_table_names_every_arch():
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    for name in list_archs():
        assert name in result.output


def test_the_families_build_any_size_their_names_spell():
    # what the tests train (nothing test-only is registered in the package): any WRN and CIFAR ResNet size
    spec = get_arch("wrn-10-1-s4")
    assert spec.name == "wrn-10-1-s4" and spec.trunk_channels == 4
    assert get_arch("resnet34-w8").default_second == "resnet18-w8" and get_arch("resnet18-w8").trunk_channels == 8
    net = create_model(ModelConfig(arch="resnet34-w8", layout="asymmetric", num_classes=3, in_channels=1, input_size=8))
    assert net(torch.rand(2, 1, 8, 8), "merged").shape == (2, 3)
    with pytest.raises(ValueError, match="6n\\+4"):
        get_arch("wrn-11-1")
    with pytest.raises(ValueError, match="unknown architecture 'wrn-16-2-s16'.*S other than 16"):
        get_arch("wrn-16-2-s16")  # the default stem is written without -s16: wrn-16-2
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        get_arch("resnet50")
