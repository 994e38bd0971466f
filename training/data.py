"""Which data a run trains on: ``DataSpec`` (the recipe's ``data:`` block) and the registry of sources.

One entry per source, like the model registry: ``digits`` (embedded), ``fashion-mnist`` and ``mnist``
(IDX files), ``cifar10`` / ``cifar100`` (torchvision folders) and ``imagefolder`` (any folder of images).
``load_splits(spec)`` is the one way in; ``dhat datasets`` prints ``describe_sources()``. Everything
returns images in [0, 1] as (C, H, W) float tensors (normalisation is inside the network), and nothing
here ever downloads: a source that needs files names where it looked and what to put there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.datasets.splits import DataSplits
from training.typed_yaml import RecipeError

# Debian's `dataset-fashion-mnist` package installs the official files here.
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@dataclass(frozen=True)
class DataSpec:
    """Which data set, where it lives, image size and channels, batch, validation and training sizes."""

    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int = 16
    channels: int | None = None  # None: the source's own (1 for grey sources, 3 for CIFAR and image folders)
    batch_size: int = 128
    val_size: int = 1000
    train_size: int | None = None  # a fixed subset of the training images (None: all of them)
    workers: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in SOURCES:
            raise RecipeError(f"unknown dataset {self.dataset!r}; valid datasets: {', '.join(SOURCES)}")
        if self.batch_size < 1:
            raise RecipeError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.image_size < 4:
            raise RecipeError(f"data.image_size must be >= 4, got {self.image_size}")
        if self.train_size is not None and self.train_size < 1:
            raise RecipeError(f"data.train_size must be >= 1 (or null for all), got {self.train_size}")
        allowed = SOURCES[self.dataset].channels
        if self.channels is not None and self.channels not in allowed:
            raise RecipeError(
                f"data.channels={self.channels} is not possible for {self.dataset} "
                f"(allowed: {', '.join(map(str, allowed))})"
            )


@dataclass(frozen=True)
class DataSource:
    """One registry entry: how to load a source and where it looks for its files."""

    name: str
    summary: str
    load: Callable[[DataSpec, Path | None], DataSplits]
    channels: tuple[int, ...]
    needs_dir: bool = True
    default_dir: str | None = None  # used when neither --data-dir nor data.data_dir is given and it exists
    layout: str = ""

    def folder(self, data_dir: str | None) -> Path | None:
        """The folder this source reads: the one given, else its default if that exists, else None."""
        if data_dir:
            return Path(data_dir)
        if self.default_dir and Path(self.default_dir).is_dir():
            return Path(self.default_dir)
        return None


def _digits(spec: DataSpec, folder: Path | None) -> DataSplits:
    from training.datasets.digits import load_digits_splits

    return load_digits_splits(spec.image_size)


def _idx(classes: tuple[str, ...]) -> Callable[[DataSpec, Path | None], DataSplits]:
    def load(spec: DataSpec, folder: Path | None) -> DataSplits:
        from training.datasets.idx import load_idx_splits

        assert folder is not None
        return load_idx_splits(
            folder, classes, image_size=spec.image_size, val_size=spec.val_size, train_size=spec.train_size
        )

    return load


def _cifar(spec: DataSpec, folder: Path | None) -> DataSplits:
    from training.datasets.cifar import load_cifar_splits

    assert folder is not None
    return load_cifar_splits(spec.dataset, folder, spec.val_size, train_size=spec.train_size)


def _imagefolder(spec: DataSpec, folder: Path | None) -> DataSplits:
    from training.datasets.imagefolder import load_imagefolder_splits

    assert folder is not None
    return load_imagefolder_splits(
        folder,
        image_size=spec.image_size,
        channels=spec.channels or 3,
        val_size=spec.val_size,
        train_size=spec.train_size,
    )


def _sources() -> dict[str, DataSource]:
    from training.datasets.idx import FASHION_MNIST_CLASSES, MNIST_CLASSES

    idx_layout = "DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"
    rows = [
        DataSource(
            "digits", "scikit-learn's 1,797 8x8 digits, embedded (70/15/15 split)", _digits, (1,), needs_dir=False
        ),
        DataSource(
            "fashion-mnist",
            "Zalando's 70,000 28x28 grey clothes images, 10 classes",
            _idx(FASHION_MNIST_CLASSES),
            (1,),
            default_dir=DEBIAN_FASHION_MNIST,
            layout=idx_layout,
        ),
        DataSource("mnist", "LeCun's 70,000 28x28 handwritten digits", _idx(MNIST_CLASSES), (1,), layout=idx_layout),
        DataSource("cifar10", "CIFAR-10, 60,000 32x32 colour images", _cifar, (3,), layout="DIR/cifar-10-batches-py/"),
        DataSource("cifar100", "CIFAR-100, 60,000 32x32 colour images", _cifar, (3,), layout="DIR/cifar-100-python/"),
        DataSource(
            "imagefolder",
            "any folder of images; class names from folder names",
            _imagefolder,
            (1, 3),
            layout="DIR/{train,test}/CLASS/*.png|jpg, optional DIR/val/",
        ),
    ]
    return {s.name: s for s in rows}


SOURCES = _sources()


def load_splits(spec: DataSpec) -> DataSplits:
    """The splits ``spec`` names; a source without a folder is an error saying what to pass."""
    source = SOURCES[spec.dataset]
    folder = source.folder(spec.data_dir)
    if source.needs_dir and folder is None:
        hint = f" (or install Debian's dataset-{spec.dataset} for {source.default_dir})" if source.default_dir else ""
        raise FileNotFoundError(
            f"{spec.dataset} needs --data-dir (or data.data_dir=...) pointing at a folder "
            f"laid out as {source.layout}{hint}; nothing is downloaded"
        )
    return source.load(spec, folder)


def describe_sources() -> list[dict[str, Any]]:
    """One row per source for ``dhat datasets``: name, summary, layout, and where it looks now."""
    rows = []
    for s in SOURCES.values():
        folder = s.folder(None)
        where = "embedded" if not s.needs_dir else (str(folder) if folder else "--data-dir DIR")
        rows.append(
            {
                "name": s.name,
                "summary": s.summary,
                "layout": s.layout or "-",
                "looks_in": where,
                "found": (not s.needs_dir) or folder is not None,
                "channels": list(s.channels),
            }
        )
    return rows
