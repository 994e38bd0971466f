import io

import numpy as np
import pytest
from PIL import Image

from dhat_serve.errors import BadRequest as InputError
from dhat_serve.http.answers import batch_result, describe, softmax
from dhat_serve.validation import decode_image, validate_tensor


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_png_and_jpeg_become_the_artifacts_channels_and_size():
    rgb = Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8))
    for fmt in ("PNG", "JPEG"):
        x = decode_image(_encode(rgb, fmt), channels=1, size=16, max_pixels=10_000)
        assert x.shape == (1, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        x3 = decode_image(_encode(rgb, fmt), channels=3, size=32, max_pixels=10_000)
        assert x3.shape == (3, 32, 32)


def test_grey_pixels_map_to_unit_range():
    img = Image.fromarray(np.full((4, 4), 255, dtype=np.uint8))
    assert np.allclose(decode_image(_encode(img, "PNG"), 1, 4, 100), 1.0)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"GIF89a not really", "not an image"),
        (b"plain text", "not an image"),
    ],
)
def test_non_images_are_refused(data, message):
    with pytest.raises(InputError, match=message):
        decode_image(data, 1, 8, 100)


def test_other_formats_bombs_and_truncation_are_refused():
    img = Image.fromarray(np.zeros((50, 50), dtype=np.uint8))
    with pytest.raises(InputError, match="format BMP is not accepted"):
        decode_image(_encode(img, "BMP"), 1, 8, 10_000)
    with pytest.raises(InputError, match="50x50 = 2500 pixels, over the limit of 1000"):
        decode_image(_encode(img, "PNG"), 1, 8, 1000)
    noisy = Image.fromarray((np.random.default_rng(1).random((64, 64)) * 255).astype(np.uint8))
    data = _encode(noisy, "PNG")
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], 1, 8, 10_000)


@pytest.mark.parametrize(
    "inputs, message",
    [
        ("abc", "nested list"),
        ([], "empty batch"),
        ([[[[0.1] * 2] * 2]] * 5, "batch of 5 images is over the limit of 4"),
        ([[[0.1] * 2] * 2], r"shape \(N, 1, 2, 2\); got \(1, 2, 2\)"),
        ([[[["x"] * 2] * 2]], "must be numbers"),
        ([[[[True] * 2] * 2]], "must be numbers"),
        ([[[[None] * 2] * 2]], "must be numbers"),
        ([[[[float("nan")] * 2] * 2]], "NaN or infinity"),
        ([[[[float("inf")] * 2] * 2]], "NaN or infinity"),
        ([[[[-0.5] * 2] * 2]], r"in \[0, 1\]"),
        ([[[[0.1, 0.2], [0.3]]]], "ragged"),
    ],
)
def test_bad_tensors_are_refused_with_a_message(inputs, message):
    with pytest.raises(InputError, match=message):
        validate_tensor(inputs, (1, 2, 2), max_batch=4)


def test_a_good_tensor_passes_as_float32():
    x = validate_tensor([[[[0, 1], [0.5, 0.25]]]], (1, 2, 2), 4)
    assert x.dtype == np.float32 and x.shape == (1, 1, 2, 2)


def test_describe_and_batch_result():
    logits = np.array([[0.0, 2.0, 1.0]], dtype=np.float32)
    d = describe(logits[0], ["a", "b", "c"], 2)
    assert d["label"] == 1 and d["class_name"] == "b" and [t["label"] for t in d["top_k"]] == [1, 2]
    assert d["confidence"] == pytest.approx(float(softmax(logits)[0, 1]))
    r = batch_result(logits)
    assert r["labels"] == [1] and abs(sum(r["probabilities"][0]) - 1) < 1e-9
