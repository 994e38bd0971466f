"""The embedded default: scikit-learn's 1,797 8x8 digits (shipped with scikit-learn, so never downloaded)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from training.datasets.splits import DataSplits, split_indices


def digits_tensors(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits scaled to [0, 1] and resized: ((N, 1, S, S), (N,))."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:  # bilinear upsampling, as the digits recipes were tuned with
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.clamp_(0.0, 1.0), torch.tensor(bunch.target, dtype=torch.long)


def load_digits_splits(image_size: int = 16) -> DataSplits:
    """70 / 15 / 15 split of digits (1,257 / 270 / 270 images): digits has no test set of its own."""
    x, y = digits_tensors(image_size)
    n_val = n_test = round(0.15 * len(y))
    tr, va, te = split_indices(len(y), n_val, n_test)
    mean, std = x[tr].mean().item(), x[tr].std().item()
    return DataSplits(
        TensorDataset(x[tr], y[tr]),
        TensorDataset(x[va], y[va]),
        TensorDataset(x[te], y[te]),
        num_classes=10,
        in_channels=1,
        image_size=image_size,
        class_names=tuple(str(i) for i in range(10)),
        mean=(round(mean, 4),),
        std=(round(std, 4),),
    )
