"""One registry: a name builds a network (timm style). ``dhat models`` lists what is here.

An architecture is an ``ArchSpec``: how to build its trunk (stem + first residual group, the paper's
attaching point) and its head (everything after). Layouts assemble specs:

- ``single``: trunk + one head (a plain classifier; loads third-party checkpoints),
- ``symmetric``: trunk + two heads of the same architecture (Fig. 2),
- ``asymmetric``: trunk + main head of ``arch`` + second head of ``second_arch`` (Fig. 3).

Beside the named networks, the two families take any size their names spell: ``wrn-D-K[-sS]`` (WideResNet of
depth D = 6n + 4, widen factor K, stem width S, 16 by default) and ``resnet18-wW`` / ``resnet34-wW`` (CIFAR
ResNet of base width W): ``wrn-10-1-s4`` is the 5k-parameter net the tests train in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from training.models.dual_head import DualHeadNet, SingleHeadNet
from training.models.merger import Merger
from training.models.normalize import Normalize
from training.models.resnet import ResNetHead, ResNetTrunk
from training.models.wideresnet import WRNHead, WRNTrunk, blocks_per_group, init_wrn_weights

LAYOUTS = ("single", "symmetric", "asymmetric")


@dataclass(frozen=True)
class ArchSpec:
    """How to build one architecture's trunk and head."""

    name: str
    description: str
    trunk_channels: int
    build_trunk: Callable[[int], nn.Module]  # in_channels -> trunk
    build_head: Callable[[int], nn.Module]  # num_classes -> head
    default_second: str | None = None  # the second head of the asymmetric layout


_ARCHS: dict[str, ArchSpec] = {}


def register(spec: ArchSpec) -> ArchSpec:
    """Add an architecture; a duplicate name is an error (torchvision's rule, not timm's warning)."""
    if spec.name in _ARCHS:
        raise ValueError(f"architecture {spec.name!r} is already registered")
    _ARCHS[spec.name] = spec
    return spec


def list_archs() -> list[str]:
    """Registered architecture names, sorted (``dhat models`` lists them)."""
    return sorted(_ARCHS)


WRN_NAME = re.compile(r"wrn-(\d+)-(\d+)(?:-s(\d+))?")
RESNET_NAME = re.compile(r"resnet(18|34)-w(\d+)")
RESNET_BLOCKS = {"18": (2, 2, 2, 2), "34": (3, 4, 6, 3)}


def get_arch(name: str) -> ArchSpec:
    """The architecture registered as ``name`` or spelled by a family's name (registered on first use), or a
    ``ValueError`` listing the valid names."""
    if name not in _ARCHS and (m := WRN_NAME.fullmatch(name)):
        blocks_per_group(int(m[1]))  # a depth other than 6n + 4 is refused here, naming the rule
        _wrn(int(m[1]), int(m[2]), stem=int(m[3] or 16))
    elif name not in _ARCHS and (m := RESNET_NAME.fullmatch(name)):
        second = f"resnet18-w{m[2]}" if m[1] == "34" else None
        _resnet(name, RESNET_BLOCKS[m[1]], int(m[2]), second, "")
    if name not in _ARCHS:
        raise ValueError(
            f"unknown architecture {name!r}; valid architectures: {', '.join(list_archs())}, or any size of "
            "wrn-D-K[-sS] (D = 6n + 4, S other than 16) and resnet18-wW / resnet34-wW"
        )
    return _ARCHS[name]


def _wrn(depth: int, widen: int, stem: int = 16, note: str = "") -> ArchSpec:
    name = f"wrn-{depth}-{widen}" + (f"-s{stem}" if stem != 16 else "")
    widths = f"{stem}-{stem * widen}-{2 * stem * widen}-{4 * stem * widen}"
    return register(
        ArchSpec(
            name=name,
            description=f"WideResNet-{depth}-{widen}, widths {widths}{note}",
            trunk_channels=stem * widen,
            build_trunk=lambda c: WRNTrunk(depth, widen, c, stem),
            build_head=lambda k: WRNHead(depth, widen, k, stem),
        )
    )


def _resnet(name: str, blocks: tuple[int, int, int, int], width: int, second: str | None, note: str) -> ArchSpec:
    return register(
        ArchSpec(
            name=name,
            description=f"CIFAR ResNet, blocks {'-'.join(map(str, blocks))}, width {width}{note}",
            trunk_channels=width,
            build_trunk=lambda c: ResNetTrunk(blocks[0], c, width),
            build_head=lambda k: ResNetHead(blocks[1:], k, width),
            default_second=second,
        )
    )


_wrn(34, 10, note=" (the paper's network)")
_wrn(34, 20)
_wrn(28, 10)
_wrn(16, 4)
_wrn(16, 2, stem=8, note=" (the embedded digits recipe)")
_resnet("resnet18", (2, 2, 2, 2), 64, None, "")
_resnet("resnet34", (3, 4, 6, 3), 64, "resnet18", " (asymmetric main head; second head: resnet18)")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network by name; saved as ``config.json`` with the weights."""

    arch: str
    layout: str = "symmetric"
    second_arch: str | None = None
    num_classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        get_arch(self.arch)
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; valid layouts: {', '.join(LAYOUTS)}")
        if self.second_arch is not None:
            get_arch(self.second_arch)
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value and len(value) != self.in_channels:
                raise ValueError(f"{key} has {len(value)} values but the model has {self.in_channels} channels")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def resolved_second_arch(self) -> str:
        """The second head's architecture: ``arch`` itself unless the layout is asymmetric."""
        if self.layout != "asymmetric":
            return self.arch
        second = self.second_arch or get_arch(self.arch).default_second
        if second is None:
            raise ValueError(f"asymmetric layout needs second_arch for {self.arch!r} (it has no default)")
        return second

    @property
    def names(self) -> tuple[str, ...]:
        """Class names, or ``'0'..'C-1'`` when the data set has none."""
        return self.class_names or tuple(str(i) for i in range(self.num_classes))


def build_normalize(cfg: ModelConfig) -> Normalize:
    """The in-network normalisation of a config (identity when the recipe trains on raw [0, 1] inputs)."""
    mean = cfg.mean or (0.0,) * cfg.in_channels
    std = cfg.std or (1.0,) * cfg.in_channels
    return Normalize(mean, std)


def create_model(cfg: ModelConfig) -> SingleHeadNet | DualHeadNet:
    """Build the network a config names, freshly initialised."""
    main = get_arch(cfg.arch)
    trunk = main.build_trunk(cfg.in_channels)
    if cfg.layout == "single":
        net: nn.Module = SingleHeadNet(build_normalize(cfg), trunk, main.build_head(cfg.num_classes))
    else:
        second = get_arch(cfg.resolved_second_arch)
        if second.trunk_channels != main.trunk_channels:
            raise ValueError(
                f"second head {second.name!r} expects {second.trunk_channels} input channels but the "
                f"{main.name!r} trunk gives {main.trunk_channels}"
            )
        net = DualHeadNet(
            build_normalize(cfg),
            trunk,
            main.build_head(cfg.num_classes),
            second.build_head(cfg.num_classes),
            Merger(cfg.num_classes),
        )
    init_wrn_weights(net)
    return net


def count_parameters(module: nn.Module | None) -> int:
    """Number of parameters of ``module`` (0 for a missing part)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def parameter_table(cfg: ModelConfig) -> dict[str, int]:
    """Parameter counts by part: trunk, main_head, second_head, merger, total.

    Built on PyTorch's ``meta`` device: shapes without storage or initialisation, so counting WRN-34-10
    (46 M parameters) or the CIFAR-100 merger (31.7 M) takes ~0.1 s instead of seconds.
    """
    with torch.device("meta"):
        net = create_model(cfg)
    if isinstance(net, SingleHeadNet):
        parts = {"trunk": net.trunk, "main_head": net.head, "second_head": None, "merger": None}
    else:
        parts = {"trunk": net.trunk, "main_head": net.main_head, "second_head": net.second_head, "merger": net.merger}
    table = {name: count_parameters(m) for name, m in parts.items()}
    table["total"] = count_parameters(net)
    return table
