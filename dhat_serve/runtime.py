"""ONNX Runtime sessions for an artifact: one per mode, CUDA when a GPU is visible, else CPU.

``ModelRuntime.run(mode, images)`` takes (N, C, H, W) float32 in [0, 1] and returns logits (N, classes);
``run_all`` returns (merged, main, second) from one run of ``merged.onnx``. Torch-free.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dhat_serve.manifest import Manifest, load_manifest
from dhat_serve.contract import GRAPH_OUTPUTS, INPUT_NAME, LOGITS, MERGED, MODES

log = logging.getLogger(__name__)


def gpu_visible() -> bool:
    """A GPU this process could use: a device node or nvidia-smi, and not hidden by CUDA_VISIBLE_DEVICES."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def choose_providers(preference: str = "auto") -> list[str]:
    """CUDA first only when asked for (or auto with a GPU) and this onnxruntime build has it.

    Asking for CUDA on a machine without a GPU makes onnxruntime-gpu log an ERROR and fall back, so
    ``auto`` asks only when a GPU is visible.
    """
    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown provider {preference!r}; valid: auto, cpu, cuda")
    available = ort.get_available_providers()
    want_cuda = preference == "cuda" or (preference == "auto" and gpu_visible())
    if want_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if preference == "cuda":
        log.warning("CUDA asked for but this onnxruntime has no CUDAExecutionProvider (%s); using CPU", available)
    return ["CPUExecutionProvider"]


@dataclass
class ModelRuntime:
    """The verified artifact and its three sessions."""

    artifact_dir: Path
    manifest: Manifest
    sessions: dict[str, ort.InferenceSession]

    @classmethod
    def load(cls, artifact_dir: str | Path, provider: str = "auto", device_id: int = 0,
             intra_op_threads: int = 0) -> ModelRuntime:
        """Verify the artifact's hashes, then open one session per mode on the chosen provider.

        ``device_id`` picks the GPU of the CUDA provider (one per process under torchrun);
        ``intra_op_threads`` > 0 sets serving threads with spinning off, so idle sessions do not burn the
        cores that parse requests (ORT spins its threads after each run by default).
        """
        artifact_dir = Path(artifact_dir)
        manifest = load_manifest(artifact_dir)  # verifies every hash before anything is loaded
        providers = choose_providers(provider)
        if "CUDAExecutionProvider" in providers and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()  # CUDA/cuDNN from the nvidia-* wheels when torch is not installed
            except Exception as exc:  # noqa: BLE001 - best effort; the session log says what it got
                log.warning("onnxruntime.preload_dlls failed: %s", exc)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads > 0:
            options.intra_op_num_threads = intra_op_threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions = {}
        for mode in MODES:
            path = artifact_dir / manifest.modes[mode].file
            chosen = [(p, {"device_id": device_id}) if p == "CUDAExecutionProvider" else p for p in providers]
            sessions[mode] = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
            log.info("mode %s: %s runs on %s", mode, path.name, ", ".join(sessions[mode].get_providers()))
        return cls(artifact_dir, manifest, sessions)

    def providers(self) -> dict[str, list[str]]:
        """The providers each session really got (a CUDA request can silently fall back to CPU)."""
        return {mode: s.get_providers() for mode, s in self.sessions.items()}

    def run(self, mode: str, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 in [0, 1] -> (N, classes) logits of ``mode``'s graph."""
        return self.sessions[mode].run([LOGITS], {INPUT_NAME: images})[0]

    def run_all(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(merged, main, second) logits, each (N, classes), from one run of ``merged.onnx``."""
        merged, main, second = self.sessions[MERGED].run(list(GRAPH_OUTPUTS[MERGED]), {INPUT_NAME: images})
        return merged, main, second
