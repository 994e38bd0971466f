"""The recipe's precision reaches every autocast of training and validation (checked without CUDA)."""

import contextlib

import torch

from training import epoch
from training.pipeline import train_recipe
from training.recipes import load_recipe


def test_only_bf16_on_cuda_autocasts():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert epoch.autocast_dtype(cuda, "bf16") == torch.bfloat16
    assert epoch.autocast_dtype(cuda, "fp32") is None and epoch.autocast_dtype(cpu, "bf16") is None


def test_the_recipe_precision_reaches_training_and_validation(tmp_path, tiny_overrides, monkeypatch):
    seen = []

    @contextlib.contextmanager
    def recording(device, precision):
        seen.append(precision)
        yield

    monkeypatch.setattr(epoch, "autocast", recording)
    recipe = load_recipe("digits", [*tiny_overrides, "precision=bf16"])
    train_recipe(recipe, tmp_path / "run", stages=(1,), device="cpu")
    assert seen and set(seen) == {"bf16"}  # every training batch and the validation attack
    assert load_recipe("digits").precision == "fp32" and load_recipe("fashion-mnist").precision == "bf16"
