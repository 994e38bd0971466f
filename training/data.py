"""Data sets: the embedded *digits* default and CIFAR-10/100 from a local torchvision folder.

Everything returns images in [0, 1] as (C, H, W) float tensors; normalisation is inside the network.
Splits are fixed by a seed of their own (not the training seed), so every run of every recipe sees the
same validation and test images. Nothing here ever downloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset, TensorDataset

DATASETS = ("digits", "cifar10", "cifar100")
SPLIT_SEED = 20240611

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


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


def digits_tensors(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 digits scaled to [0, 1] and resized: ((N, 1, S, S), (N,))."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.clamp_(0.0, 1.0), torch.tensor(bunch.target, dtype=torch.long)


def split_indices(n: int, val: int, test: int) -> tuple[list[int], list[int], list[int]]:
    """(train, val, test) indices of a fixed permutation (``SPLIT_SEED``): every run sees the same splits."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    return perm[val + test :], perm[:val], perm[val : val + test]


def load_digits_splits(image_size: int = 16) -> DataSplits:
    """70 / 15 / 15 split of digits (1,257 / 270 / 270 images)."""
    x, y = digits_tensors(image_size)
    n_val = n_test = round(0.15 * len(y))
    tr, va, te = split_indices(len(y), n_val, n_test)
    mean, std = x[tr].mean().item(), x[tr].std().item()
    return DataSplits(
        TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va]), TensorDataset(x[te], y[te]),
        num_classes=10, in_channels=1, image_size=image_size, class_names=tuple(str(i) for i in range(10)),
        mean=(round(mean, 4),), std=(round(std, 4),),
    )


def cifar_folder_error(name: str, data_dir: Path) -> str:
    """The message for a missing CIFAR folder: what to put where (nothing is downloaded)."""
    folder = CIFAR_FOLDERS[name]
    return (
        f"{name}: no {folder}/ under --data-dir {data_dir}. Put the standard torchvision layout there "
        f"({data_dir}/{folder}/ as unpacked from the official {folder.split('-py')[0]} python tarball); "
        "nothing is downloaded at run time"
    )


def load_cifar_splits(name: str, data_dir: str | Path, val_size: int = 1000, augment: bool = True) -> DataSplits:
    """CIFAR from ``data_dir`` (torchvision layout); ``val_size`` training images held out for validation.

    The paper validates on 1,000 images; they are taken from the training set (Rice et al.), so the
    test set stays unseen until evaluation.
    """
    from torchvision import datasets, transforms

    data_dir = Path(data_dir)
    if not (data_dir / CIFAR_FOLDERS[name]).is_dir():
        raise FileNotFoundError(cifar_folder_error(name, data_dir))
    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    plain = transforms.ToTensor()
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), plain])
    full_aug = cls(str(data_dir), train=True, transform=train_tf if augment else plain, download=False)
    full_plain = cls(str(data_dir), train=True, transform=plain, download=False)
    test = cls(str(data_dir), train=False, transform=plain, download=False)
    tr, va, _ = split_indices(len(full_plain), val_size, 0)
    mean, std = CIFAR_STATS[name]
    return DataSplits(
        Subset(full_aug, tr), Subset(full_plain, va), test,
        num_classes=len(full_plain.classes), in_channels=3, image_size=32, class_names=tuple(full_plain.classes),
        mean=mean, std=std,
    )


def load_splits(dataset: str, data_dir: str | None = None, image_size: int = 16, val_size: int = 1000) -> DataSplits:
    """Dispatch by name; a CIFAR name without ``data_dir`` is an error that says what to pass."""
    if dataset == "digits":
        return load_digits_splits(image_size)
    if dataset in CIFAR_FOLDERS:
        if not data_dir:
            raise FileNotFoundError(f"{dataset} needs --data-dir (or data.data_dir=...) pointing at a folder with "
                                    f"{CIFAR_FOLDERS[dataset]}/ in it")
        return load_cifar_splits(dataset, data_dir, val_size)
    raise ValueError(f"unknown dataset {dataset!r}; valid datasets: {', '.join(DATASETS)}")


def first_n(ds: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples as one batch: ((n, C, H, W), (n,)). For validation and evaluation."""
    n = min(n, len(ds))
    xs, ys = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)
