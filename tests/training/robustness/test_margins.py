"""The margin losses on hand-made logits: signs, the hinge's flat side, and that a fooled output stops pulling."""

from __future__ import annotations

import torch

from training.robustness.margins import hinge, margin, targeted_margin


def test_margin_is_positive_exactly_where_the_output_is_wrong():
    logits = torch.tensor([[3.0, 1.0, 0.0], [1.0, 4.0, 2.0], [0.0, 0.5, 0.2]])
    y = torch.tensor([0, 0, 2])
    assert margin(logits, y).tolist() == [-2.0, 3.0, 0.30000001192092896]
    assert ((margin(logits, y) > 0) == (logits.argmax(1) != y)).all()
    assert targeted_margin(logits, torch.tensor([1, 1, 1])).tolist() == [-2.0, 2.0, 0.30000001192092896]


def test_a_satisfied_hinge_stops_pulling_and_an_unsatisfied_one_pulls():
    logits = torch.tensor([[5.0, 1.0], [1.0, 5.0]], requires_grad=True)
    y = torch.tensor([0, 0])  # row 0 right (margin -4), row 1 already fooled (margin +4)
    hinge(margin(logits, y)).sum().backward()
    assert logits.grad[0].tolist() == [-1.0, 1.0]  # pulls the true logit down, the runner-up up
    assert logits.grad[1].tolist() == [0.0, 0.0]  # fooled: no gradient, the other outputs get the attack's steps


def test_summed_hinges_put_the_gradient_on_the_outputs_still_right():
    fooled = torch.tensor([[0.0, 50.0]], requires_grad=True)  # far past the boundary: CE would dominate the sum
    right = torch.tensor([[2.0, 1.0]], requires_grad=True)
    y = torch.tensor([0])
    (hinge(margin(fooled, y)) + hinge(margin(right, y))).sum().backward()
    assert float(fooled.grad.abs().sum()) == 0.0 and float(right.grad.abs().sum()) == 2.0
    ce = torch.nn.functional.cross_entropy
    f2, r2 = fooled.detach().requires_grad_(), right.detach().requires_grad_()
    (ce(f2, y) + ce(r2, y)).backward()
    assert float(f2.grad.abs().sum()) > float(r2.grad.abs().sum())  # what the summed CE of `joint` did instead


def test_hinge_with_kappa_caps_at_kappa():
    assert hinge(torch.tensor([-1.0, 0.5, 3.0]), kappa=1.0).tolist() == [-1.0, 0.5, 1.0]
