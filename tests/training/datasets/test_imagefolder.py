"""Image folders in torchvision's ImageFolder layout, written by the tests, and each refusal's message."""

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.data_files import CLASSES, write_folder
from training.data import DataSpec, load_splits
from training.datasets.imagefolder import ImageFolderError


def spec(root, **kw):
    return DataSpec(dataset="imagefolder", data_dir=str(root), **{"image_size": 8, "val_size": 2, **kw})


def test_a_folder_loads_resized_with_class_names_from_folders_and_a_held_out_validation(tmp_path):
    splits = load_splits(spec(write_folder(tmp_path)))
    assert splits.class_names == CLASSES and splits.num_classes == 3
    assert (len(splits.train), len(splits.val), len(splits.test)) == (10, 2, 12)
    x, y = splits.test[11]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert int(y) == 2 and abs(float(x.mean()) - (60 + 140) / 255) < 0.06  # zebra's colour, label 2
    assert splits.in_channels == 3 and len(splits.mean) == 3


def test_grey_channels_a_val_folder_and_a_training_subset(tmp_path):
    splits = load_splits(spec(write_folder(tmp_path, splits=("train", "val", "test")), channels=1, train_size=5))
    assert (len(splits.train), len(splits.val)) == (5, 12)  # val/ is used as is, nothing held out
    assert splits.train[0][0].shape == (1, 8, 8) and splits.in_channels == 1


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: (r / "train" / "dog" / "0.jpg").write_bytes(b"\x89PNG not really"), r"dog/0.jpg: unreadable image"),
        (lambda r: [p.unlink() for p in (r / "test" / "cat").iterdir()], r"test/cat: empty class"),
        (
            lambda r: (r / "test" / "lion").mkdir() or write_png(r / "test" / "lion" / "a.png"),
            r"classes \['lion'\] are not among the training classes",
        ),
        (lambda r: __import__("shutil").rmtree(r / "test"), r"test: folder not found; imagefolder expects"),
    ],
)
def test_a_broken_folder_is_refused_naming_the_path(tmp_path, damage, message):
    root = write_folder(tmp_path)
    damage(root)
    with pytest.raises(ImageFolderError, match=message):
        load_splits(spec(root))


def write_png(path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)


def test_too_few_images_to_hold_out_validation_and_a_missing_root(tmp_path):
    with pytest.raises(ImageFolderError, match="too few to hold out data.val_size=50"):
        load_splits(spec(write_folder(tmp_path), val_size=50))
    with pytest.raises(ImageFolderError, match="folder not found"):
        load_splits(spec(tmp_path / "nowhere"))
