import pytest
import torch

from training.attacks import PGDConfig
from training.methods import METHODS, method_of
from training.models.dual_head import ModeView


@pytest.mark.parametrize("name", METHODS)
def test_each_loss_is_finite_and_decreases(name, tiny_net):
    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    view = ModeView(tiny_net, "main")
    tiny_net.train()
    opt = torch.optim.SGD(tiny_net.parameters(), lr=0.05, momentum=0.9)
    method = method_of(name)
    attack = method.training_attack(PGDConfig(eps=0.05, step=0.02, steps=3))
    losses = []
    for _ in range(8):
        loss = method.loss(view, x, y, beta=6.0, attack=attack)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert tiny_net.training  # the attack restored train mode


def test_trades_with_identical_logits_is_plain_cross_entropy():
    from training.losses import trades_loss

    logits, y = torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(trades_loss(logits, logits, y, 6.0), torch.nn.functional.cross_entropy(logits, y))


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'fgsm'.*natural, sat, trades, mart"):
        method_of("fgsm")
