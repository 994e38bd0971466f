import pytest
import torch

from training.attacks import PGDConfig, accuracy, pgd, robust_accuracy
from training.datasets.digits import load_digits_splits
from training.models.dual_head import ModeView
from training.models.registry import ModelConfig, create_model


@pytest.fixture(scope="module")
def trained_view():
    """A naturally trained tiny WRN on 8x8 digits (a few seconds on CPU)."""
    torch.manual_seed(0)
    splits = load_digits_splits(8)
    x, y = splits.train.tensors
    net = create_model(ModelConfig(arch="wrn-10-1-s4", layout="symmetric", in_channels=1, input_size=8))
    view = ModeView(net, "main")
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.train()
    for _ in range(15):
        for i in torch.randperm(len(y)).split(64):
            loss = torch.nn.functional.cross_entropy(view(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    xt, yt = splits.test.tensors
    return view, xt, yt


def test_pgd_stays_in_the_eps_ball_and_the_unit_box(trained_view):
    view, x, y = trained_view
    for start in ("uniform", "normal", "none"):
        for loss in ("ce", "kl"):
            cfg = PGDConfig(eps=0.1, step=0.05, steps=5, random_start=start, loss=loss)
            x_adv = pgd(view, x, y, cfg)
            assert x_adv.shape == x.shape
            assert float((x_adv - x).abs().max()) <= 0.1 + 1e-6
            assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_pgd_lowers_accuracy_of_a_trained_model(trained_view):
    view, x, y = trained_view
    clean = accuracy(view, x, y)
    robust = robust_accuracy(view, x, y, PGDConfig(eps=0.2, step=0.05, steps=10))
    assert clean > 0.8
    assert robust < clean - 0.3


def test_restarts_never_do_worse_than_one_run(trained_view):
    view, x, y = trained_view
    torch.manual_seed(1)
    one = robust_accuracy(view, x, y, PGDConfig(eps=0.08, step=0.02, steps=5))
    torch.manual_seed(1)
    three = robust_accuracy(view, x, y, PGDConfig(eps=0.08, step=0.02, steps=5, restarts=3))
    assert three <= one


def test_attack_restores_each_modules_mode(trained_view):
    view, x, y = trained_view
    net = view.net
    net.train()
    net.frozen_parts = ("trunk",)
    net.train()
    pgd(view, x[:4], y[:4], PGDConfig(eps=0.1, step=0.05, steps=1))
    assert net.training and net.main_head.training and not net.trunk.training
    net.frozen_parts = ()


def test_eps_outside_unit_interval_is_refused():
    with pytest.raises(ValueError, match="eps must be in \\[0, 1\\]"):
        PGDConfig(eps=8, step=2, steps=10)


def test_the_papers_pgd_k_schedule_is_defined_once():
    from training.attacks import pgd_schedule
    from training.robustness.suite import pgd_config

    assert pgd_schedule(0.1, 20) == PGDConfig(
        eps=0.1, step=2.5 * 0.1 / 20, steps=20, restarts=1, random_start="uniform", loss="ce"
    )
    assert pgd_config("pgd100x5", 8 / 255) == pgd_schedule(8 / 255, 100, restarts=5)
    with pytest.raises(ValueError, match="not a PGD attack name"):
        pgd_config("apgd-ce", 0.1)
