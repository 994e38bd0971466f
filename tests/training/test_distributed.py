"""Device choice: a plain ``cuda`` takes this process's GPU (LOCAL_RANK), never an index-less device."""

import torch

from training import distributed


def test_plain_cuda_becomes_the_local_rank_gpu(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "0")
    ctx = distributed.setup("cuda")  # torch.cuda.set_device("cuda") raised ValueError before
    assert ctx.device == torch.device("cuda", 0) and chosen == [torch.device("cuda", 0)]
    assert distributed.setup("cpu").device == torch.device("cpu")
