"""The head-disagreement monitor on the live service: its rate on clean test images, then on PGD examples.

Every run of ``merged.onnx`` counts the images whose main and second heads' argmax differ
(``dhat_heads_disagree_total`` / ``dhat_images_total``, and ``heads_disagree`` / ``heads_checked`` in
``/v2/models/merged/stats``). This sends the run's clean test images to ``mode=merged`` over the Open
Inference Protocol (binary tensors, 32 per request), reads the counters, then sends PGD-20 examples
crafted against ``merged`` on the run's twin (the recipe's eps, seed 0), and reads them again. The rate
each phase adds is what an operator's dashboard would show; it is checked against the same count taken
offline on the raw session.

Usage: python -m benchmarks.bench_disagreement --artifact artifacts/digits --run runs/digits
       python -m benchmarks.bench_disagreement --artifact artifacts/fashion-mnist-cpu --run runs/fashion-mnist-cpu \
           --cache reports/fashion-mnist-cpu/pgd20/cache     # 10,000 test images, PGD-20 from `dhat eval`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.bench_oip import oip_body  # noqa: E402
from benchmarks.common import OUT, save  # noqa: E402
from dhat_serve.manifest import load_manifest  # noqa: E402
from tests.helpers.server import Server  # noqa: E402
from training.datasets.splits import first_n  # noqa: E402
from training.models.dual_head import ModeView  # noqa: E402
from training.robustness.suite import AttackContext, run_attack  # noqa: E402
from training.robustness.twin import load_twin  # noqa: E402
from training.run_dir import RunDir  # noqa: E402


def counters(url: str) -> tuple[int, int]:
    """(images checked, images whose heads disagree) of mode ``merged``, from the statistics endpoint."""
    stats = httpx.get(f"{url}/v2/models/merged/stats", timeout=10).json()["model_stats"][0]
    return stats["heads_checked"], stats["heads_disagree"]


def send(url: str, x: np.ndarray, batch: int = 32) -> dict[str, float]:
    """Send ``x`` to ``merged`` in requests of ``batch`` images; the counters' increase and its rate."""
    before = counters(url)
    with httpx.Client(timeout=60) as client:
        for i in range(0, len(x), batch):
            body, headers = oip_body(np.ascontiguousarray(x[i : i + batch]))
            client.post(f"{url}/v2/models/merged/infer", content=body, headers=headers).raise_for_status()
    checked, disagree = (a - b for a, b in zip(counters(url), before))
    return {"images": checked, "disagree": disagree, "rate": disagree / checked}


def offline(artifact: Path, x: np.ndarray) -> float:
    """The same rate from the raw ``merged.onnx`` session (main_logits vs second_logits)."""
    session = ort.InferenceSession(str(artifact / "merged.onnx"), providers=["CPUExecutionProvider"])
    main, second = session.run(["main_logits", "second_logits"], {"images": x})
    return float(np.mean(main.argmax(1) != second.argmax(1)))


def cached_pgd(cache: Path, n: int, sha: str) -> torch.Tensor | None:
    """The fp32 PGD-20 examples ``dhat eval`` crafted against this ``merged`` graph (sha256 ``sha``; its
    ``cache/``), in test order, if all n are there (TF32 chunks end in ``_tf32``, another graph's in its sha)."""
    files = sorted(cache.glob(f"merged_pgd20_eps*_seed0_*_{sha[:16]}.safetensors"), key=lambda f: int(f.stem.split("_")[4]))
    if not files:
        return None
    x_adv = torch.cat([load_file(str(f))["x_adv"] for f in files])
    return x_adv if len(x_adv) == n else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("artifacts/digits"))
    parser.add_argument("--run", type=Path, default=Path("runs/digits"))
    parser.add_argument("--cache", type=Path, default=None,
                        help="a `dhat eval --attacks pgd20` report's cache/ to reuse its merged PGD-20 examples")
    args = parser.parse_args()
    recipe, splits = RunDir(args.run).load_data()
    x, y = first_n(splits.test, len(splits.test))
    manifest = load_manifest(args.artifact)
    net, _ = load_twin(args.run, manifest)
    eps = recipe.validation.attack.eps
    adv = cached_pgd(args.cache, len(x), manifest.modes["merged"].sha256) if args.cache else None
    if adv is None:
        adv = run_attack("pgd20", ModeView(net.eval(), "merged").eval(), None, "merged", x, y,
                         AttackContext(eps=eps, seed=0, device=torch.device("cpu")))
    clean_np, adv_np = x.numpy().astype(np.float32), adv.detach().numpy().astype(np.float32)
    srv = Server(args.artifact, OUT / "disagreement_server.log", DHAT_PROVIDER="cpu")
    try:
        srv.wait_ready()
        clean, pgd = send(srv.url, clean_np), send(srv.url, adv_np)
        metrics = httpx.get(f"{srv.url}/metrics", timeout=10).text
    finally:
        srv.stop()
    line = next(m for m in metrics.splitlines() if m.startswith('dhat_heads_disagree_total{mode="merged"}'))
    result = {"artifact": str(args.artifact), "n": len(clean_np), "eps": eps, "attack": "pgd20 on merged (twin)",
              "clean": {**clean, "offline_rate": offline(args.artifact, clean_np)},
              "pgd20": {**pgd, "offline_rate": offline(args.artifact, adv_np)},
              "prometheus_after_both": float(line.split()[-1])}
    print(save(f"disagreement_{args.artifact.name}", result))
    for phase in ("clean", "pgd20"):
        r = result[phase]
        print(f"{phase}: {r['disagree']} of {r['images']} images = {100 * r['rate']:.2f} % "
              f"(offline on the raw session: {100 * r['offline_rate']:.2f} %)")


if __name__ == "__main__":
    main()
