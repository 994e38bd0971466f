import pytest
import torch

from training.models.dual_head import SingleHeadNet
from training.models.registry import ModelConfig, create_model


def _single_from(net, head):
    return SingleHeadNet(net.normalize, net.trunk, head).eval()


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1, input_size=8),
        ModelConfig(arch="resnet34-w8", layout="asymmetric", in_channels=3, input_size=8),
    ],
)
def test_main_and_second_equal_single_head_networks(cfg):
    torch.manual_seed(0)
    net = create_model(cfg).eval()
    x = torch.rand(4, cfg.in_channels, 8, 8)
    torch.testing.assert_close(net(x, "main"), _single_from(net, net.main_head)(x), rtol=0, atol=0)
    torch.testing.assert_close(net(x, "second"), _single_from(net, net.second_head)(x), rtol=0, atol=0)


def test_modes_run_only_what_they_need(tiny_net):
    calls = {"trunk": 0, "main_head": 0, "second_head": 0, "merger": 0}
    for name in calls:
        getattr(tiny_net, name).register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    x = torch.rand(2, 1, 8, 8)
    tiny_net(x, "main")
    assert calls == {"trunk": 1, "main_head": 1, "second_head": 0, "merger": 0}
    tiny_net(x, "second")
    assert calls == {"trunk": 2, "main_head": 1, "second_head": 1, "merger": 0}
    tiny_net(x, "merged")
    assert calls == {"trunk": 3, "main_head": 2, "second_head": 2, "merger": 1}


def test_forward_all_agrees_with_each_mode(tiny_net):
    x = torch.rand(3, 1, 8, 8)
    merged, main, second = tiny_net.forward_all(x)
    torch.testing.assert_close(merged, tiny_net(x, "merged"))
    torch.testing.assert_close(main, tiny_net(x, "main"))
    torch.testing.assert_close(second, tiny_net(x, "second"))


def test_unknown_mode_lists_valid_modes(tiny_net):
    with pytest.raises(ValueError, match="unknown mode 'both'; valid modes: main, second, merged"):
        tiny_net(torch.rand(1, 1, 8, 8), "both")


def test_normalisation_is_inside_the_network():
    cfg = ModelConfig(arch="wrn-10-1-s4", layout="single", in_channels=1, input_size=8, mean=(0.5,), std=(0.25,))
    net = create_model(cfg).eval()
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(net(x), net.head(net.trunk((x - 0.5) / 0.25)))
