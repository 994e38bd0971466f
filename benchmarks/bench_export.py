"""Per-mode throughput: the ONNX graphs under ONNX Runtime vs the same modes in PyTorch eager (CPU).

Batch 1 and 16, interleaved in one process; also merged-mode cost relative to main-mode cost (a shared
trunk should make it well under 2x). Usage:
    python -m benchmarks.bench_export [--artifact artifacts/digits] [--arch wrn-16-4 --size 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import onnxruntime as ort
import torch

from benchmarks.common import OUT, interleaved, random_artifact, save
from dhat_serve.contract import INPUT_NAME
from dhat_serve.manifest import load_manifest
from export.graphs import graph_module
from training.checkpoints import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--artifact", type=Path, default=None, help="an exported artifact (default: random --arch)")
    parser.add_argument("--arch", default="wrn-16-4")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    artifact = args.artifact or random_artifact(args.arch, OUT / f"artifact-{args.arch}", size=args.size)
    manifest = load_manifest(artifact)
    net, _, _ = load_checkpoint(manifest.provenance["checkpoint"])
    net.eval()
    options = ort.SessionOptions()
    # ORT's idle worker threads spin after each run; interleaved with torch that would steal its cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = {
        m: ort.InferenceSession(str(artifact / g.file), options, providers=["CPUExecutionProvider"])
        for m, g in manifest.modes.items()
    }
    rows = {}
    for batch in (1, 16):
        x = torch.rand(batch, *manifest.input_shape)
        xn = x.numpy()
        fns = {}
        for mode, sess in sessions.items():
            module = graph_module(net, mode)
            fns[f"ort_{mode}"] = lambda s=sess, xn=xn: s.run(None, {INPUT_NAME: xn})
            fns[f"torch_{mode}"] = lambda m=module, x=x: torch.no_grad()(m)(x)
        reps = max(args.repeats, int(40 / batch))
        times = interleaved(fns, repeats=reps, warmup=2)
        rows[f"batch_{batch}"] = {
            mode: {
                "ort_images_per_s": batch / times[f"ort_{mode}"],
                "torch_images_per_s": batch / times[f"torch_{mode}"],
                "ort_speedup": times[f"torch_{mode}"] / times[f"ort_{mode}"],
            }
            for mode in sessions
        }
        rows[f"batch_{batch}"]["merged_over_main_ort"] = times["ort_merged"] / times["ort_main"]
        rows[f"batch_{batch}"]["merged_over_main_torch"] = times["torch_merged"] / times["torch_main"]
    save(
        f"export_throughput_{manifest.architecture['arch']}",
        {
            "artifact": str(artifact),
            "arch": manifest.architecture["arch"],
            "input_shape": list(manifest.input_shape),
            "torch_threads": torch.get_num_threads(),
            "onnxruntime": ort.__version__,
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
