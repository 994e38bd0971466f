"""MNIST and Fashion-MNIST from their official IDX files (``.gz`` or unpacked), checked before use.

The IDX format (LeCun's): two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions,
then each dimension as a big-endian int32, then the data. Images are ``(N, 28, 28)`` (magic 0x00000803),
labels ``(N,)`` (magic 0x00000801). Every way a file can be wrong (missing, not IDX, wrong type or rank,
truncated, trailing bytes, image and label counts that differ, labels outside the classes) raises an
``IdxError`` naming the file and what was expected, before any training starts.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from training.datasets.splits import DataError, DataSplits, resize, train_val_test

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
MNIST_CLASSES = tuple(str(i) for i in range(10))
# The official file stems; each is looked for as STEM.gz, then STEM.
IDX_FILES = {
    ("train", "pixels"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "pixels"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
UBYTE = 0x08


class IdxError(DataError):
    """A missing or malformed IDX file; the message names the file and what was expected."""


def find_idx_file(folder: Path, stem: str) -> Path:
    """``folder/STEM.gz`` or ``folder/STEM``; an IdxError saying both names when neither exists."""
    for path in (folder / f"{stem}.gz", folder / stem):
        if path.is_file():
            return path
    raise IdxError(f"{folder / stem}.gz (or unpacked {stem}) not found: expected the official IDX file there")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array of rank ``ndim`` from ``path`` (gzip or raw), shape as the header says."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise IdxError(f"{path}: cannot read it as {'gzip' if path.suffix == '.gz' else 'a file'} ({e})") from None
    if len(raw) < 4 or raw[0:2] != b"\0\0":
        raise IdxError(f"{path}: not an IDX file (the magic number must start with two zero bytes)")
    if raw[2] != UBYTE or raw[3] != ndim:
        found = int.from_bytes(raw[0:4], "big")
        raise IdxError(
            f"{path}: magic number 0x{found:08x}, expected 0x{(UBYTE << 8) | ndim:08x} "
            f"(unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated header ({len(raw)} bytes, expected {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IdxError(f"{path}: {what}: {len(raw)} bytes, but its header {dims} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_split(folder: Path, split: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's images and labels, checked against each other: ((N, 1, 28, 28) float in [0, 1], (N,) long)."""
    images_path = find_idx_file(folder, IDX_FILES[split, "pixels"])
    labels_path = find_idx_file(folder, IDX_FILES[split, "labels"])
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise IdxError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels: "
            "the two files must come from the same release"
        )
    if labels.size and int(labels.max()) >= num_classes:
        raise IdxError(f"{labels_path}: label {int(labels.max())} is outside the {num_classes} classes")
    x = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_idx_splits(
    folder: Path, class_names: tuple[str, ...], *, image_size: int, val_size: int, train_size: int | None
) -> DataSplits:
    """MNIST-layout IDX files from ``folder``: its 10,000 test images as the test set, ``val_size`` of the
    training images held out for validation, images resized to ``image_size`` (antialiased)."""
    x, y = read_split(folder, "train", len(class_names))
    x_test, y_test = read_split(folder, "test", len(class_names))
    return train_val_test(
        resize(x, image_size),
        y,
        resize(x_test, image_size),
        y_test,
        val_size=val_size,
        train_size=train_size,
        class_names=class_names,
    )
