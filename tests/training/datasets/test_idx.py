"""IDX loading (MNIST / Fashion-MNIST) on files the tests write themselves, and every malformed-file message."""

import gzip

import numpy as np
import pytest
import torch

from tests.helpers.data_files import idx_bytes, write_idx_set
from training.data import DataSpec, load_splits
from training.datasets.idx import FASHION_MNIST_CLASSES, IdxError, read_idx


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_as_28x28_images_in_unit_range_with_labels_and_class_names(tmp_path, gz):
    arrays = write_idx_set(tmp_path, gz=gz)
    spec = DataSpec(dataset="fashion-mnist", data_dir=str(tmp_path), image_size=28, val_size=10)
    splits = load_splits(spec)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (30, 10, 12)
    x, y = splits.test.tensors
    assert x.shape == (12, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert torch.equal(x[3, 0], torch.from_numpy(arrays["t10k"][0][3]).float() / 255)  # test order kept
    assert y.tolist() == arrays["t10k"][1].tolist()
    assert splits.class_names == FASHION_MNIST_CLASSES and splits.class_names[9] == "Ankle boot"
    assert splits.in_channels == 1 and splits.num_classes == 10 and len(splits.mean) == 1


def test_resizing_subsets_and_mnist_class_names(tmp_path):
    write_idx_set(tmp_path)
    spec = DataSpec(dataset="mnist", data_dir=str(tmp_path), image_size=16, val_size=10, train_size=8)
    splits = load_splits(spec)
    assert len(splits.train) == 8 and splits.train.tensors[0].shape[1:] == (1, 16, 16)
    assert splits.image_size == 16 and splits.class_names[0] == "0"
    again = load_splits(spec)  # the split is fixed by its own seed, not by the run
    assert torch.equal(splits.val.tensors[0], again.val.tensors[0])


def break_file(folder, name, data: bytes):
    (folder / name).write_bytes(gzip.compress(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: b"\x01\x02" + raw[2:], "not an IDX file"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "expected 0x00000803"),
        (lambda raw: raw[:-5], "truncated"),
        (lambda raw: raw + b"\0", "trailing bytes"),
        (lambda raw: raw[:6], "truncated header"),
    ],
)
def test_a_malformed_image_file_is_refused_naming_the_file_and_what_was_expected(tmp_path, damage, message):
    write_idx_set(tmp_path)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    break_file(tmp_path, "train-images-idx3-ubyte.gz", damage(raw))
    with pytest.raises(IdxError, match=message) as info:
        load_splits(DataSpec(dataset="fashion-mnist", data_dir=str(tmp_path), val_size=10))
    assert "train-images-idx3-ubyte.gz" in str(info.value)


def test_count_mismatch_bad_gzip_missing_file_and_out_of_range_labels(tmp_path):
    write_idx_set(tmp_path)
    spec = DataSpec(dataset="mnist", data_dir=str(tmp_path), val_size=10)
    break_file(tmp_path, "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(11, np.uint8)))
    with pytest.raises(IdxError, match="holds 12 images but .*t10k-labels-idx1-ubyte.gz holds 11 labels"):
        load_splits(spec)
    break_file(tmp_path, "t10k-labels-idx1-ubyte.gz", idx_bytes(np.full(12, 10, np.uint8)))
    with pytest.raises(IdxError, match="label 10 is outside the 10 classes"):
        load_splits(spec)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(IdxError, match="cannot read it as gzip"):
        load_splits(spec)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(IdxError, match=r"t10k-labels-idx1-ubyte.gz \(or unpacked t10k-labels-idx1-ubyte\) not found"):
        load_splits(spec)


def test_read_idx_reads_the_header_shape(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)))
    assert read_idx(path, 3).shape == (2, 3, 4)
