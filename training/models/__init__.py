"""Architectures, the dual-head wrapper, the merger and the registry that builds them by name."""

from training.models.dual_head import AllOutputs, DualHeadNet, ModeView, SingleHeadNet
from training.models.registry import ModelConfig, create_model, get_arch, list_archs, parameter_table

__all__ = [
    "AllOutputs",
    "DualHeadNet",
    "ModeView",
    "ModelConfig",
    "SingleHeadNet",
    "create_model",
    "get_arch",
    "list_archs",
    "parameter_table",
]
