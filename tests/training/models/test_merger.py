import itertools

import torch

from training.models.merger import Merger, class_pairs, merger_features


def test_flattened_width_matches_the_paper():
    assert merger_features(10) == 2880
    assert merger_features(100) == 316_800
    assert Merger(10).fc.in_features == 2880


def test_class_pairs_are_every_unordered_pair_once():
    i, j = class_pairs(10)
    assert len(i) == 45
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(itertools.combinations(range(10), 2))


def test_merger_matches_a_loop_over_class_pairs():
    """The vectorised gather equals the paper's definition written as explicit loops."""
    torch.manual_seed(0)
    m = Merger(5).eval()
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    out = m(a, b)
    x = torch.stack((a, b), -1).unsqueeze(1)
    h = torch.relu(m.bn(m.head_conv(x).squeeze(-1)))  # (N, 8, C)
    w, bias = m.class_conv.weight.view(16, 2), m.class_conv.bias
    feats = torch.zeros(3, 16, 8, 10)
    for p, (ci, cj) in enumerate(itertools.combinations(range(5), 2)):
        for k in range(16):
            feats[:, k, :, p] = w[k, 0] * h[:, :, ci] + w[k, 1] * h[:, :, cj] + bias[k]
    pooled = (feats[:, 0::2] + feats[:, 1::2]) / 2  # (N, 8, 8, P)
    expected = m.fc(pooled.reshape(3, -1))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
