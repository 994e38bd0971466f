"""The data registry: one entry per source, what each needs, and the spec's checks."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch

from tests.helpers.data_files import write_idx_set
from training import data
from training.data import DataSpec, describe_sources, load_splits
from training.datasets.cifar import load_cifar_splits
from training.datasets.digits import load_digits_splits
from training.typed_yaml import RecipeError


def test_digits_splits_are_fixed_scaled_and_resized():
    a, b = load_digits_splits(16), load_digits_splits(16)
    assert (len(a.train), len(a.val), len(a.test)) == (1257, 270, 270)
    x, y = a.train.tensors
    assert x.shape[1:] == (1, 16, 16) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert a.num_classes == 10 and a.in_channels == 1


def test_the_registry_lists_every_source_with_where_it_looks():
    rows = {r["name"]: r for r in describe_sources()}
    assert list(rows) == ["digits", "fashion-mnist", "mnist", "cifar10", "cifar100", "imagefolder"]
    assert rows["digits"]["looks_in"] == "embedded" and rows["digits"]["found"]
    assert rows["mnist"]["looks_in"] == "--data-dir DIR" and not rows["mnist"]["found"]
    assert "t10k" in rows["fashion-mnist"]["layout"] and rows["imagefolder"]["channels"] == [1, 3]


def test_a_source_without_its_folder_says_what_to_pass(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no cifar-10-batches-py/ under --data-dir"):
        load_splits(DataSpec(dataset="cifar10", data_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="cifar100 needs --data-dir .* laid out as DIR/cifar-100-python/"):
        load_splits(DataSpec(dataset="cifar100"))
    missing = dataclasses.replace(data.SOURCES["fashion-mnist"], default_dir=str(tmp_path / "absent"))
    monkeypatch.setitem(data.SOURCES, "fashion-mnist", missing)
    with pytest.raises(FileNotFoundError, match="install Debian's dataset-fashion-mnist"):
        load_splits(DataSpec(dataset="fashion-mnist"))


def test_fashion_mnist_defaults_to_the_debian_folder_when_it_exists(tmp_path, monkeypatch):
    write_idx_set(tmp_path)
    monkeypatch.setitem(
        data.SOURCES, "fashion-mnist", dataclasses.replace(data.SOURCES["fashion-mnist"], default_dir=str(tmp_path))
    )
    assert len(load_splits(DataSpec(dataset="fashion-mnist", image_size=28, val_size=10)).test) == 12


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"dataset": "svhn"}, "unknown dataset 'svhn'; valid datasets: digits, fashion-mnist"),
        ({"dataset": "digits", "channels": 3}, r"data.channels=3 is not possible for digits \(allowed: 1\)"),
        ({"dataset": "imagefolder", "train_size": 0}, "data.train_size must be >= 1"),
        ({"dataset": "digits", "image_size": 2}, "data.image_size must be >= 4"),
    ],
)
def test_the_data_spec_refuses_impossible_values_naming_the_key(kw, message):
    with pytest.raises(RecipeError, match=message):
        DataSpec(**kw)


def _fake_cifar10(root, n=20):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)


def test_cifar_loads_from_a_local_torchvision_folder(tmp_path, monkeypatch):
    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)  # fake files have no official md5
    _fake_cifar10(tmp_path)
    splits = load_cifar_splits("cifar10", tmp_path, val_size=10)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    x, y = splits.train[0]
    assert x.shape == (3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert splits.class_names[0] == "class0"
    assert len(load_cifar_splits("cifar10", tmp_path, val_size=10, train_size=7).train) == 7
