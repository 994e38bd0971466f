"""Data files the tests write themselves: MNIST-layout IDX files and ImageFolder trees (nothing downloaded)."""

from __future__ import annotations

import gzip

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "zebra")


def write_folder(root, per_class=4, splits=("train", "test"), size=(20, 12), seed=0):
    """root/{split}/{class}/{i}.png|jpg with a class-dependent mean colour; returns root."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = np.clip(rng.normal(60 + 70 * c, 10, (*size[::-1], 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000080N, big-endian dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder, n_train=40, n_test=12, gz=True, seed=0):
    """A tiny MNIST-layout folder; returns (train images, train labels) as written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        arrays[stem] = (images, labels)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            raw = idx_bytes(arr)
            name = f"{stem}-{kind}-ubyte"
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return arrays
