"""Checkpoints as safetensors weights + a JSON config that rebuilds the network by name.

A checkpoint is a directory::

    config.json        {"format": 1, "model": {ModelConfig}, "trained": {"main_head": ..., ...}, "meta": {...}}
    model.safetensors  the state dict (parameters and BatchNorm buffers)

Nothing is ever unpickled: weights come from safetensors, or from ``torch.load(weights_only=True)`` for
third-party single-head files (TRADES / MART ``.pt``), which load as trunk + main head.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from training.models.dual_head import DualHeadNet, SingleHeadNet
from training.models.registry import ModelConfig, create_model

log = logging.getLogger(__name__)

FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a checkpoint directory (it has a ``config.json``)."""
    return (Path(path) / CONFIG_FILE).is_file()


@dataclass(frozen=True)
class CheckpointMeta:
    """Where a checkpoint came from and how it validated: ``config.json``'s ``meta``, written by every stage.

    Export copies recipe, seed and the two eps into the manifest's provenance; ``--resume`` reads
    ``epoch`` and ``best_score``; ``complete`` says the stage ran to the end of its schedule. Fields a
    hand-made checkpoint lacks are None. ``epoch`` counts from 1 as the plan, logs and the paper do
    (``epoch_base`` 1; 0 is "no epoch trained"); checkpoints written before that counted from 0 and say
    ``epoch_base`` 0 by its absence: ``epochs_done`` reads both.
    """

    stage: int | None = None
    epoch: int | None = None
    epoch_base: int = 0
    complete: bool = False
    select: str | None = None
    best_score: float | None = None
    val_clean: float | None = None
    val_robust: float | None = None
    recipe: str | None = None
    seed: int | None = None
    eps: float | None = None
    validation_eps: float | None = None

    @property
    def epochs_done(self) -> int:
        """How many epochs of its stage this checkpoint had trained (its 1-based epoch number; 0 for none)."""
        return 0 if self.epoch is None else max(self.epoch + 1 - self.epoch_base, 0)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        """``config.json``'s ``meta`` (keys this version does not know are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``meta`` entry."""
        return asdict(self)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message says why and what to do."""


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """``config.json``'s ``model`` entry back into a ``ModelConfig`` (JSON lists become tuples)."""
    tuples = {k: tuple(v) for k, v in data.items() if k in ("mean", "std", "class_names") and v is not None}
    return ModelConfig(**{**data, **tuples})


def atomic_dir_write(target: Path, write: Any) -> None:
    """Write a directory atomically: ``write(tmp_dir)`` then rename over ``target``.

    A kill at any point leaves either the old checkpoint or the new one, never a torn mix.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)
        old = target.with_name(f".{target.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def save_checkpoint(
    path: str | Path,
    net: nn.Module,
    cfg: ModelConfig,
    trained: dict[str, bool],
    meta: CheckpointMeta | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write ``path/`` atomically. ``extra_tensors`` (optimizer state) go to ``OPTIMIZER_FILE``."""

    def write(tmp: Path) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        doc = {"format": FORMAT, "model": asdict(cfg), "trained": trained, "meta": (meta or CheckpointMeta()).to_dict()}
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
        if extra_tensors:
            save_file({k: v.contiguous().cpu() for k, v in extra_tensors.items()}, str(tmp / OPTIMIZER_FILE))

    atomic_dir_write(Path(path), write)


def read_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint directory, refused if missing or of another format."""
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise CheckpointError(
            f"{path} is not a checkpoint: {CONFIG_FILE} is missing (expected {CONFIG_FILE} + {WEIGHTS_FILE})"
        )
    doc = json.loads(cfg_file.read_text())
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_file}: unsupported checkpoint format {doc.get('format')!r} (expected {FORMAT})")
    return doc


def check_state_matches(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights that do not fit the network, naming the first mismatching key."""
    expected = net.state_dict()
    for key in sorted(set(expected) | set(state)):
        if key not in state:
            raise CheckpointError(f"{source}: weights lack key {key!r} that the config's network has")
        if key not in expected:
            raise CheckpointError(f"{source}: weights have key {key!r} that the config's network does not")
        if tuple(state[key].shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: key {key!r} has shape {tuple(state[key].shape)} in the weights but "
                f"{tuple(expected[key].shape)} in the config's network"
            )


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the network from ``config.json`` and load ``model.safetensors`` into it, exactly."""
    path = Path(path)
    doc = read_checkpoint_config(path)
    cfg = model_config_from_dict(doc["model"])
    net = create_model(cfg)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{path}: {WEIGHTS_FILE} is missing")
    state = load_file(str(weights))
    check_state_matches(net, state, str(weights))
    net.load_state_dict(state, strict=True)
    return net.to(device), cfg, doc


def read_meta(path: str | Path) -> CheckpointMeta:
    """The ``meta`` of the checkpoint at ``path``, typed."""
    return CheckpointMeta.from_dict(read_checkpoint_config(path).get("meta") or {})


def rewrite_meta(path: str | Path, change: Callable[[CheckpointMeta], CheckpointMeta]) -> None:
    """Replace the ``meta`` of the checkpoint at ``path`` with ``change(meta)`` (config.json rewritten atomically)."""
    config = Path(path) / CONFIG_FILE
    doc = json.loads(config.read_text())
    doc["meta"] = change(CheckpointMeta.from_dict(doc.get("meta") or {})).to_dict()
    tmp = config.with_name(f".{CONFIG_FILE}.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, config)


def momentum_state(net: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """SGD momentum buffers by parameter name (``momentum.<name>``): what ``--resume`` needs besides weights."""
    names = {p: name for name, p in net.named_parameters()}
    return {
        f"momentum.{names[p]}": s["momentum_buffer"]
        for p, s in opt.state.items()
        if s.get("momentum_buffer") is not None
    }


def load_momentum(net: nn.Module, opt: torch.optim.Optimizer, checkpoint: Path) -> None:
    """Restore the momentum saved by ``momentum_state`` in ``checkpoint``, if it has any."""
    path = Path(checkpoint) / OPTIMIZER_FILE
    if not path.is_file():
        return
    params = dict(net.named_parameters())
    for key, value in load_file(str(path)).items():
        p = params[key.removeprefix("momentum.")]
        opt.state[p] = {"momentum_buffer": value.to(p.device)}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or ``torch.load(weights_only=True)``; never unpickles objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a plain state dict (weights_only load refused it: {exc})") from exc
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def load_single_head(net: DualHeadNet | SingleHeadNet, path: str | Path) -> list[str]:
    """Load a plain single-head checkpoint as trunk + main head; return the keys it ignored.

    Accepts our own ``SingleHeadNet`` keys (``trunk.*``, ``head.*``) and the TRADES / MART / AutoAttack
    layout (``conv1.*``, ``block1.*``, ``fc.*`` / ``layer1.*``, ``linear.*``): a top-level key goes to
    the trunk or the main head by which of them owns that child name. Keys neither owns (TRADES'
    unused ``sub_block1``) are ignored, and logged.
    """
    head = net.main_head if isinstance(net, DualHeadNet) else net.head
    trunk_names = {name for name, _ in net.trunk.named_children()}
    head_names = {name for name, _ in head.named_children()}
    trunk_state: dict[str, torch.Tensor] = {}
    head_state: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in read_state_dict(path).items():
        for prefix in ("trunk.", "head.", "main_head."):
            if key.startswith(prefix):
                target = trunk_state if prefix == "trunk." else head_state
                target[key.removeprefix(prefix)] = value
                break
        else:
            top = key.split(".", 1)[0]
            if top in trunk_names:
                trunk_state[key] = value
            elif top in head_names:
                head_state[key] = value
            else:
                ignored.append(key)
    for part, state, name in ((net.trunk, trunk_state, "trunk"), (head, head_state, "main head")):
        if not state:
            raise CheckpointError(f"{path}: no {name} weights found; is it a checkpoint of this architecture?")
        try:
            check_state_matches(part, state, f"{path} ({name})")
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; the file does not match this architecture") from None
        part.load_state_dict(state, strict=True)
    if ignored:
        log.warning("ignored %d keys not used by trunk or main head: %s", len(ignored), ", ".join(ignored[:5]))
    return ignored
