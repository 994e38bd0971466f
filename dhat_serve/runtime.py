"""ONNX Runtime sessions for an artifact: one per mode, CUDA when a GPU is visible, else CPU.

``ModelRuntime.run(request_mode, images)`` is the one call every user makes (the service's batchers,
evaluation, export's parity check): (N, C, H, W) float32 in [0, 1] -> ``{output name: (N, classes)}``,
the outputs ``contract.REQUEST_OUTPUTS`` lists for that request mode (``all`` runs ``merged.onnx`` once).
``predict`` is the same in chunks, for data sets. Torch-free.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dhat_serve.config import PROVIDER_CHOICES
from dhat_serve.contract import INPUT_NAME, request_graph, request_output_names
from dhat_serve.manifest import Manifest, load_manifest

log = logging.getLogger(__name__)

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def gpu_visible() -> bool:
    """A GPU this process could use: a device node or nvidia-smi, and not hidden by CUDA_VISIBLE_DEVICES."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def gpu_count() -> int:
    """GPUs this process sees: CUDA_VISIBLE_DEVICES' entries when set, else ``nvidia-smi -L``'s lines (0 without)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def worker_device(worker_index: int | None, gpus: tuple[int, ...]) -> int:
    """The GPU of serving worker ``worker_index`` (1-based, BentoML's): worker i takes ``gpus[(i - 1) mod n]``,
    so two workers on two GPUs get one each and four share them two by two; GPU 0 when there are none."""
    if not gpus:
        return 0
    return gpus[((worker_index or 1) - 1) % len(gpus)]


def choose_providers(preference: str = "auto") -> list[str]:
    """CUDA first only when asked for (or auto with a GPU) and this onnxruntime build has it.

    Asking for CUDA on a machine without a GPU makes onnxruntime-gpu log an ERROR and fall back, so
    ``auto`` asks only when a GPU is visible.
    """
    if preference not in PROVIDER_CHOICES:
        raise ValueError(f"unknown provider {preference!r}; valid: {', '.join(PROVIDER_CHOICES)}")
    available = ort.get_available_providers()
    want_cuda = preference == "cuda" or (preference == "auto" and gpu_visible())
    if want_cuda and CUDA in available:
        return [CUDA, CPU]
    if preference == "cuda":
        log.warning("CUDA asked for but this onnxruntime has no CUDAExecutionProvider (%s); using CPU", available)
    return [CPU]


def cuda_options(device_id: int, exact_fp32: bool) -> dict[str, str]:
    """The CUDA provider's options: its GPU and, for ``exact_fp32``, TF32 off (ORT's CUDA provider uses TF32
    convolutions by default, which put an fp32 graph ~1e-3 from the fp32 PyTorch twin on an H100: fine for
    serving, too far for the evaluation's 1e-4 twin check)."""
    return {"device_id": str(device_id), **({"use_tf32": "0"} if exact_fp32 else {})}


def open_sessions(
    graphs: dict[str, Path],
    provider: str = "auto",
    device_id: int = 0,
    intra_op_threads: int = 0,
    exact_fp32: bool = False,
) -> dict[str, ort.InferenceSession]:
    """One ONNX Runtime session per ``{mode: graph path}`` on the chosen provider.

    ``device_id`` picks the GPU of the CUDA provider (one per process under torchrun);
    ``intra_op_threads`` > 0 sets serving threads with spinning off, so idle sessions do not burn the
    cores that parse requests (ORT spins its threads after each run by default); ``exact_fp32`` turns
    the CUDA provider's TF32 off (``cuda_options``).
    """
    providers = choose_providers(provider)
    if CUDA in providers and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels when torch is not installed
        except Exception as exc:
            log.warning("onnxruntime.preload_dlls failed: %s", exc)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads > 0:
        options.intra_op_num_threads = intra_op_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    chosen = [(p, cuda_options(device_id, exact_fp32)) if p == CUDA else p for p in providers]
    return {
        mode: ort.InferenceSession(str(path), sess_options=options, providers=chosen) for mode, path in graphs.items()
    }


@dataclass
class GraphSessions:
    """Sessions by mode and the one way to run them: ``run`` / ``predict`` by request mode.

    Export's parity check uses this directly on graphs that have no manifest yet; everything else uses
    ``ModelRuntime``, which adds the verified artifact.
    """

    sessions: dict[str, ort.InferenceSession]

    def providers(self) -> dict[str, list[str]]:
        """The providers each session really got (a CUDA request can silently fall back to CPU)."""
        return {mode: s.get_providers() for mode, s in self.sessions.items()}

    def run(self, request_mode: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """(N, C, H, W) float32 in [0, 1] -> ``{output name: (N, classes)}`` for ``request_mode``, one session run."""
        names = request_output_names(request_mode)
        outputs = self.sessions[request_graph(request_mode)].run(list(names), {INPUT_NAME: images})
        return dict(zip(names, outputs, strict=True))

    def predict(self, request_mode: str, images: np.ndarray, batch_size: int = 512) -> dict[str, np.ndarray]:
        """``run`` over (N, C, H, W) images in chunks of ``batch_size`` (memory stays bounded on a data set)."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        parts = [self.run(request_mode, images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
        return {name: np.concatenate([p[name] for p in parts]) for name in request_output_names(request_mode)}


@dataclass
class ModelRuntime(GraphSessions):
    """The verified artifact and its three sessions (``load`` checks every hash before opening any)."""

    artifact_dir: Path
    manifest: Manifest

    @classmethod
    def load(
        cls,
        artifact_dir: str | Path,
        provider: str = "auto",
        device_id: int = 0,
        intra_op_threads: int = 0,
        exact_fp32: bool = False,
    ) -> ModelRuntime:
        """Verify the artifact's hashes, then open one session per mode (see ``open_sessions``)."""
        artifact_dir = Path(artifact_dir)
        manifest = load_manifest(artifact_dir)  # verifies every hash before anything is loaded
        graphs = {mode: artifact_dir / entry.file for mode, entry in manifest.modes.items()}  # three, or main alone
        return cls(open_sessions(graphs, provider, device_id, intra_op_threads, exact_fp32), artifact_dir, manifest)
