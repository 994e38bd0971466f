"""CIFAR-10/100 from a local folder in torchvision's layout (the official python tarballs, unpacked)."""

from __future__ import annotations

from pathlib import Path

from training.datasets.splits import DataSplits, split_indices

CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def cifar_folder_error(name: str, data_dir: Path) -> str:
    """The message for a missing CIFAR folder: what to put where (nothing is downloaded)."""
    folder = CIFAR_FOLDERS[name]
    return (
        f"{name}: no {folder}/ under --data-dir {data_dir}. Put the standard torchvision layout there "
        f"({data_dir}/{folder}/ as unpacked from the official {folder.split('-py')[0]} python tarball); "
        "nothing is downloaded at run time"
    )


def load_cifar_splits(
    name: str, data_dir: str | Path, val_size: int = 1000, augment: bool = True, train_size: int | None = None
) -> DataSplits:
    """CIFAR from ``data_dir`` (torchvision layout); ``val_size`` training images held out for validation.

    The paper validates on 1,000 images; they are taken from the training set (Rice et al.), so the
    test set stays unseen until evaluation.
    """
    from torch.utils.data import Subset
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
        Subset(full_aug, tr[:train_size]),
        Subset(full_plain, va),
        test,
        num_classes=len(full_plain.classes),
        in_channels=3,
        image_size=32,
        class_names=tuple(full_plain.classes),
        mean=mean,
        std=std,
    )
