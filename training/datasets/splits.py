"""What every data source returns: fixed train / validation / test splits of images in [0, 1].

Splits are fixed by a seed of their own (``SPLIT_SEED``, not the training seed), so every run of every
recipe sees the same validation and test images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

SPLIT_SEED = 20240611


class DataError(ValueError):
    """A data source's files are missing or malformed; the message names the file and what was expected."""


@dataclass(frozen=True)
class DataSplits:
    """Train / validation / test sets plus what the model config needs to know about them."""

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def split_indices(n: int, val: int, test: int) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) indices of a fixed permutation (``SPLIT_SEED``): every run sees the same splits."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    return perm[val + test :], perm[:val], perm[val : val + test]


def resize(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] to (N, C, S, S), antialiased when shrinking (so 28 -> 16 does not alias)."""
    if x.shape[-2:] == (image_size, image_size):
        return x
    shrink = image_size < max(x.shape[-2:])
    out = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of (N, C, H, W) training images, rounded to 4 places (they go in the manifest)."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    return tuple(round(v, 4) for v in flat.mean(1).tolist()), tuple(round(v, 4) for v in flat.std(1).tolist())


def train_val_test(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    val_size: int,
    train_size: int | None,
    class_names: tuple[str, ...],
) -> DataSplits:
    """Splits from a source with its own test set: ``val_size`` training images held out for validation.

    ``train_size`` keeps only the first that many of the remaining training images (a fixed subset, for
    recipes sized to a CPU); None keeps them all. x: (N, C, S, S) float in [0, 1]; y: (N,) long.
    """
    if val_size >= len(y):
        raise DataError(f"data.val_size={val_size} leaves no training images (the source has {len(y)})")
    tr, va, _ = split_indices(len(y), val_size, 0)
    if train_size is not None:
        tr = tr[:train_size]
    mean, std = channel_stats(x[tr])
    return DataSplits(
        TensorDataset(x[tr], y[tr]),
        TensorDataset(x[va], y[va]),
        TensorDataset(x_test, y_test),
        num_classes=len(class_names),
        in_channels=x.shape[1],
        image_size=x.shape[-1],
        class_names=class_names,
        mean=mean,
        std=std,
    )


def validation_from_test(splits: DataSplits, n: int) -> DataSplits:
    """The paper's validation set (§IV-A: "a small validation set (1000 CIFAR-10 test images)"): ``n`` test
    images, fixed by ``SPLIT_SEED``, validate; the test split keeps the others, in their order, so an
    evaluation never scores an image that picked a checkpoint."""
    total = len(splits.test)
    if not 0 < n < total:
        raise DataError(
            f"validation.source=test takes data.val_size={n} of the {total} test images; "
            f"use 0 < data.val_size < {total}"
        )
    _, val, rest = split_indices(total, n, total - n)
    return dataclasses.replace(splits, val=Subset(splits.test, val), test=Subset(splits.test, sorted(rest)))


def first_n(ds: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples as one batch: ((n, C, H, W), (n,)). For validation and evaluation."""
    n = min(n, len(ds))
    if isinstance(ds, TensorDataset):
        x, y = ds.tensors
        return x[:n].clone(), y[:n].clone()
    xs, ys = zip(*(ds[i] for i in range(n)), strict=True)
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)
