"""Any folder of images in torchvision's ``ImageFolder`` layout: ``DIR/{train,test}/CLASS/*.png|jpg``.

An optional ``DIR/val/CLASS/...`` is the validation set; without it, ``val_size`` training images are
held out. Class names are the sorted folder names of ``train/`` (the manifest carries them, so
``/classify`` answers with them). Every image is decoded once, up front, at the recipe's size and
channels: an unreadable file, an empty class, or a test class the training set lacks is an
``ImageFolderError`` naming the path before any training starts. Images are kept as uint8
``(N, C, S, S)`` (a quarter of float32's memory) and scaled to [0, 1] when read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from training.datasets.splits import DataError, DataSplits, channel_stats, split_indices

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
SPLIT_FOLDERS = ("train", "val", "test")


class ImageFolderError(DataError):
    """A missing folder, an empty class or an unreadable image; the message names the path."""


class UInt8Images(Dataset):
    """(uint8 images (N, C, S, S), labels (N,)) served as (float (C, S, S) in [0, 1], label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i].float().div_(255.0), self.labels[i]

    def subset(self, index: list[int]) -> UInt8Images:
        """The images at ``index``, as a dataset of its own."""
        return UInt8Images(self.images[index], self.labels[index])


def class_folders(split_dir: Path) -> dict[str, list[Path]]:
    """{class name: sorted image paths} of one split folder; an error for no classes or an empty class."""
    if not split_dir.is_dir():
        raise ImageFolderError(
            f"{split_dir}: folder not found; imagefolder expects DIR/train/CLASS/*.png|jpg and "
            "DIR/test/CLASS/... (optional DIR/val/CLASS/...)"
        )
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise ImageFolderError(f"{split_dir}: no class folders in it (expected {split_dir}/CLASS/IMAGE.png)")
    found = {}
    for folder in classes:
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise ImageFolderError(f"{folder}: empty class (no {', '.join(IMAGE_SUFFIXES)} files in it)")
        found[folder.name] = images
    return found


def decode(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image as uint8 (S, S, C): converted to grey or RGB, resized with Pillow's antialiasing filter."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB").resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).reshape(image_size, image_size, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageFolderError(f"{path}: unreadable image ({e})") from None


def load_split(split_dir: Path, classes: tuple[str, ...], image_size: int, channels: int) -> UInt8Images:
    """Every image of one split folder, labelled by ``classes`` (the training set's class order)."""
    found = class_folders(split_dir)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ImageFolderError(f"{split_dir}: classes {unknown} are not among the training classes {list(classes)}")
    paths = [(p, classes.index(name)) for name, ps in found.items() for p in ps]
    images = np.stack([decode(p, image_size, channels) for p, _ in paths])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return UInt8Images(x, torch.tensor([label for _, label in paths], dtype=torch.long))


def load_imagefolder_splits(
    root: Path, *, image_size: int, channels: int, val_size: int, train_size: int | None
) -> DataSplits:
    """Train / val / test from ``root``; without ``root/val``, ``val_size`` training images are held out."""
    if not root.is_dir():
        raise ImageFolderError(f"{root}: folder not found (pass --data-dir DIR with DIR/train/CLASS/... in it)")
    classes = tuple(class_folders(root / "train"))
    full = load_split(root / "train", classes, image_size, channels)
    test = load_split(root / "test", classes, image_size, channels)
    if (root / "val").is_dir():
        train, val = full, load_split(root / "val", classes, image_size, channels)
    else:
        if val_size >= len(full):
            raise ImageFolderError(
                f"{root / 'train'}: {len(full)} images, too few to hold out data.val_size={val_size}"
            )
        tr, va, _ = split_indices(len(full), val_size, 0)
        train, val = full.subset(tr), full.subset(va)
    if train_size is not None:
        train = train.subset(list(range(min(train_size, len(train)))))
    mean, std = channel_stats(train.images.float().div_(255.0))
    return DataSplits(
        train,
        val,
        test,
        num_classes=len(classes),
        in_channels=channels,
        image_size=image_size,
        class_names=classes,
        mean=mean,
        std=std,
    )
