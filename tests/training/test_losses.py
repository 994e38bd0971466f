import pytest
import torch

from training.attacks import PGDConfig
from training.losses import METHODS, method_loss, training_attack
from training.models.dual_head import ModeView


@pytest.mark.parametrize("method", METHODS)
def test_each_loss_is_finite_and_decreases(method, tiny_net):
    torch.manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    view = ModeView(tiny_net, "main")
    tiny_net.train()
    opt = torch.optim.SGD(tiny_net.parameters(), lr=0.05, momentum=0.9)
    attack = training_attack(method, PGDConfig(eps=0.05, step=0.02, steps=3))
    losses = []
    for _ in range(8):
        loss = method_loss(view, x, y, method, beta=6.0, attack=attack)
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


def test_unknown_method_lists_the_valid_ones(tiny_net):
    with pytest.raises(ValueError, match="unknown method 'fgsm'.*natural, sat, trades, mart"):
        method_loss(ModeView(tiny_net, "main"), torch.rand(2, 1, 8, 8), torch.tensor([0, 1]), "fgsm", 1.0,
                    training_attack("sat", PGDConfig(eps=0.1, step=0.1, steps=1)))
