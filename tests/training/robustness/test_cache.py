"""Phase 1's cache keys and crafting precision, on a Job whose device is named, not used (no GPU needed)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from training.distributed import DistContext
from training.robustness.cache import Job, crafting_precision
from training.robustness.settings import EvalSettings

SHA = "ab" * 32


def job(device: str, precision: str) -> Job:
    rt = SimpleNamespace(manifest=SimpleNamespace(modes={"main": SimpleNamespace(sha256=SHA)}))
    dist = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device(device))
    settings = EvalSettings(batch_size=4, attack_precision=precision)
    return Job(
        torch.zeros(10, 1, 8, 8),
        torch.zeros(10, dtype=torch.long),
        torch.nn.Identity(),
        rt,
        settings,
        0.1,
        Path("cache"),
        dist,
    )


@pytest.fixture
def fp32_backends():
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False  # torch's defaults


def test_tf32_examples_have_their_own_cache_key_and_only_on_cuda():
    fp32 = job("cuda", "fp32").key("main", "pgd20", 0.1, 8)
    assert fp32 == f"main_pgd20_eps0.100000_seed0_8_2_{SHA[:16]}"  # the last chunk holds 2 of the 10 images
    assert job("cuda", "tf32").key("main", "pgd20", 0.1, 8) == fp32 + "_tf32"
    assert job("cpu", "tf32").key("main", "pgd20", 0.1, 8) == fp32  # a CPU has no TF32: the same examples as fp32


def test_crafting_in_tf32_turns_it_on_for_phase_one_only(fp32_backends):
    with crafting_precision(job("cuda", "tf32")):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    with pytest.raises(RuntimeError), crafting_precision(job("cuda", "tf32")):
        raise RuntimeError("an attack failed")
    assert not torch.backends.cudnn.allow_tf32, "scoring after a failed phase 1 must still be exact fp32"


@pytest.mark.parametrize("device, precision", [("cuda", "fp32"), ("cpu", "tf32")])
def test_fp32_or_a_cpu_leaves_the_backends_exact(fp32_backends, device, precision):
    with crafting_precision(job(device, precision)):
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


def test_an_unknown_precision_names_the_flag():
    with pytest.raises(ValueError, match=r"--attack-precision 'bf16': use fp32 or tf32"):
        EvalSettings(attack_precision="bf16")
