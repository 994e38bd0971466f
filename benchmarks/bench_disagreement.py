"""The head-disagreement monitor on the live service: its rate on clean test images, on PGD examples, and on the
examples of the attack built to evade it (``agree``).

Every run of ``merged.onnx`` counts the images whose main and second heads' argmax differ
(``dhat_heads_disagree_total`` / ``dhat_images_total``, and ``heads_disagree`` / ``heads_checked`` in
``/v2/models/merged/stats``). This sends the run's clean test images to ``mode=merged`` over the Open
Inference Protocol (binary tensors, 32 per request), reads the counters, then sends PGD-20 examples
crafted against ``merged`` on the run's twin (the recipe's eps, seed 0), and reads them again; then the
``agree`` examples (``training.robustness.adaptive``: fool merged with the heads agreeing), crafted on the same
twin with the same seed. The rate each phase adds is what an operator's dashboard would show, against an
attacker who ignores the monitor and against one who knows it; each is checked against the same count taken
offline on the raw session.

Usage: python -m benchmarks.bench_disagreement --artifact artifacts/digits --run runs/digits
       python -m benchmarks.bench_disagreement --artifact artifacts/fashion-mnist-cpu --run runs/fashion-mnist-cpu \
           --cache reports/fashion-mnist-cpu/adaptive/cache --n 2000   # PGD-20 and agree from `dhat eval`
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

from benchmarks.bench_oip import oip_body
from benchmarks.common import OUT, save
from dhat_serve.local_server import Server
from dhat_serve.manifest import load_manifest
from training.datasets.splits import first_n
from training.models.dual_head import AllOutputs, ModeView
from training.robustness.suite import AttackContext, run_attack
from training.robustness.twin import load_twin
from training.run_dir import RunDir


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
    checked, disagree = (a - b for a, b in zip(counters(url), before, strict=True))
    return {"images": checked, "disagree": disagree, "rate": disagree / checked}


def offline(artifact: Path, x: np.ndarray) -> float:
    """The same rate from the raw ``merged.onnx`` session (main_logits vs second_logits)."""
    session = ort.InferenceSession(str(artifact / "merged.onnx"), providers=["CPUExecutionProvider"])
    main, second = session.run(["main_logits", "second_logits"], {"images": x})
    return float(np.mean(main.argmax(1) != second.argmax(1)))


def cached(cache: Path, target: str, attack: str, n: int, sha: str, eps: float) -> torch.Tensor | None:
    """The fp32 examples ``dhat eval`` crafted with ``attack`` against ``target`` (``merged``, or ``all`` for a system
    attack) of this graph (``merged.onnx``'s sha256 ``sha``; its ``cache/``), in test order, if all n are there
    (TF32 chunks end in ``_tf32``, another graph's in its sha)."""
    files = sorted(
        cache.glob(f"{target}_{attack}_eps{eps:.6f}_seed0_*_{sha[:16]}.safetensors"),  # as Job.key names them
        key=lambda f: int(f.stem.split("_")[4]),
    )
    if not files:
        return None
    x_adv = torch.cat([load_file(str(f))["x_adv"] for f in files])
    return x_adv if len(x_adv) == n else None


def examples(
    args: argparse.Namespace, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, sha: str
) -> dict[str, torch.Tensor]:
    """PGD-20 on merged and agree on the three outputs: from ``--cache`` when it holds them, else crafted here."""
    ctx = AttackContext(eps=eps, seed=0, device=torch.device("cpu"))
    out = {}
    for name, target, twin in (("pgd20", "merged", ModeView(net, "merged")), ("agree", "all", AllOutputs(net))):
        adv = cached(args.cache, target, name, len(x), sha, eps) if args.cache else None
        out[name] = adv if adv is not None else run_attack(name, twin.eval(), None, target, x, y, ctx)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, default=Path("artifacts/digits"))
    parser.add_argument("--run", type=Path, default=Path("runs/digits"))
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="a `dhat eval --attacks pgd20,agree` report's cache/ to reuse its examples",
    )
    parser.add_argument("--n", type=int, default=None, help="the first N test images (default: all)")
    args = parser.parse_args()
    recipe, splits = RunDir(args.run).load_data()
    x, y = first_n(splits.test, args.n or len(splits.test))
    manifest = load_manifest(args.artifact)
    if "merged" not in manifest.modes:
        sys.exit(f"{args.artifact} is a single-head artifact (main.onnx alone): it has no heads to disagree")
    net, _ = load_twin(args.run, manifest)
    eps = recipe.validation.attack.eps
    adv = examples(args, net.eval(), x, y, eps, manifest.modes["merged"].sha256)
    phases = {"clean": x, **adv}
    arrays = {k: v.detach().numpy().astype(np.float32) for k, v in phases.items()}
    srv = Server(args.artifact, OUT / "disagreement_server.log", DHAT_PROVIDER="cpu")
    try:
        srv.wait_ready()
        sent = {k: send(srv.url, a) for k, a in arrays.items()}
        metrics = httpx.get(f"{srv.url}/metrics", timeout=10).text
    finally:
        srv.stop()
    line = next(m for m in metrics.splitlines() if m.startswith('dhat_heads_disagree_total{mode="merged"}'))
    result = {
        "artifact": str(args.artifact),
        "n": len(x),
        "eps": eps,
        "attacks": {
            "pgd20": "PGD-20 on merged (twin), ignores the monitor",
            "agree": "agree on the three outputs (twin), built to pass the monitor",
        },
        **{k: {**sent[k], "offline_rate": offline(args.artifact, a)} for k, a in arrays.items()},
        "prometheus_after_all": float(line.split()[-1]),
    }
    print(save(f"disagreement_{args.artifact.name}", result))
    for phase in arrays:
        r = result[phase]
        print(
            f"{phase}: {r['disagree']} of {r['images']} images = {100 * r['rate']:.2f} % "
            f"(offline on the raw session: {100 * r['offline_rate']:.2f} %)"
        )


if __name__ == "__main__":
    main()
