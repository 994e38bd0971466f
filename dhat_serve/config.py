"""Serving limits and choices, read once from the environment into a frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """``DHAT_*`` environment variables with safe defaults (caps on what one request may cost)."""

    artifact: str | None = None  # DHAT_ARTIFACT: an artifact directory; unset -> BentoML model store dhat:latest
    provider: str = "auto"  # DHAT_PROVIDER: auto | cpu | cuda
    max_batch: int = 256  # DHAT_MAX_BATCH: images per /predict request
    max_request_bytes: int = 16 * 1024 * 1024  # DHAT_MAX_REQUEST_BYTES: whole HTTP body
    max_image_pixels: int = 4096 * 4096  # DHAT_MAX_IMAGE_PIXELS: decoded width x height (decompression bombs)
    batch_size: int = 64  # DHAT_BATCH_SIZE: adaptive batching, images per ONNX Runtime call
    batch_latency_ms: int = 5000  # DHAT_BATCH_LATENCY_MS: adaptive batching deadline (beyond it: 503, load shedding)

    @classmethod
    def from_env(cls) -> ServeConfig:
        """Read every ``DHAT_*`` variable once; unset ones keep the defaults above."""
        env = os.environ
        return cls(
            artifact=env.get("DHAT_ARTIFACT") or None,
            provider=env.get("DHAT_PROVIDER", "auto"),
            max_batch=int(env.get("DHAT_MAX_BATCH", cls.max_batch)),
            max_request_bytes=int(env.get("DHAT_MAX_REQUEST_BYTES", cls.max_request_bytes)),
            max_image_pixels=int(env.get("DHAT_MAX_IMAGE_PIXELS", cls.max_image_pixels)),
            batch_size=int(env.get("DHAT_BATCH_SIZE", cls.batch_size)),
            batch_latency_ms=int(env.get("DHAT_BATCH_LATENCY_MS", cls.batch_latency_ms)),
        )
