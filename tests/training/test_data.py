import pickle

import numpy as np
import pytest
import torch

from training.data import load_cifar_splits, load_digits_splits, load_splits


def test_digits_splits_are_fixed_scaled_and_resized():
    a, b = load_digits_splits(16), load_digits_splits(16)
    assert (len(a.train), len(a.val), len(a.test)) == (1257, 270, 270)
    x, y = a.train.tensors
    assert x.shape[1:] == (1, 16, 16) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert a.num_classes == 10 and a.in_channels == 1


def test_missing_cifar_folder_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cifar-10-batches-py/ under --data-dir"):
        load_splits("cifar10", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="needs --data-dir"):
        load_splits("cifar100", None)


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
