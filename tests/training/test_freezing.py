import pytest
import torch

from training.freezing import copy_main_to_second, freeze, trainable_parameters


def test_frozen_trunk_gets_no_gradient_and_keeps_its_bn_statistics(tiny_net):
    freeze(tiny_net, ["trunk", "main_head", "merger"])
    tiny_net.train()
    before = {k: v.clone() for k, v in tiny_net.trunk.state_dict().items()}
    opt = torch.optim.SGD(trainable_parameters(tiny_net), lr=0.1)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    torch.nn.functional.cross_entropy(tiny_net(x, "second"), y).backward()
    opt.step()
    assert all(p.grad is None for p in tiny_net.trunk.parameters())
    for k, v in tiny_net.trunk.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and running statistics
    assert not tiny_net.trunk.training and tiny_net.second_head.training
    assert any(p.grad is not None for p in tiny_net.second_head.parameters())


def test_unfrozen_bn_statistics_do_move(tiny_net):
    """Guard for the test above: without freezing the same step does move the statistics."""
    tiny_net.train()
    before = tiny_net.trunk.block1.layer[0].bn1.running_mean.clone()
    tiny_net(torch.rand(8, 1, 8, 8), "second")
    assert not torch.equal(before, tiny_net.trunk.block1.layer[0].bn1.running_mean)


def test_copy_main_to_second(tiny_net):
    copy_main_to_second(tiny_net)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(tiny_net(x, "main"), tiny_net(x, "second"))


def test_unknown_part_is_named(tiny_net):
    with pytest.raises(ValueError, match="unknown part 'head'"):
        freeze(tiny_net, ["head"])
