"""The painter interface: a torch module plus everything the engine needs to run it at scale.

A painter maps ``in_channels`` input fields to ``out_channels`` output fields on a 2-D or 3-D
grid. Besides its weights, the engine (chunked painting, :mod:`bigpaint.paint`) needs to know:

``context``
    Voxels of neighbourhood needed on each side of a painted voxel, derived from the
    architecture (:mod:`bigpaint.context`), never typed by hand.
``alignment``
    Offset granularity: a chunk's origin must be a multiple of it (``2**levels`` for a U-Net
    with ``levels`` poolings, 1 for purely convolutional painters), so that pooling grids of
    a chunk coincide with those of the whole box.
``mode``
    ``"valid"``: output = input minus ``2 * context`` per axis (the halo painter, dm2gal's
    dense form); ``"same"``: output = input size (U-Nets with padding: the first ``context``
    voxels from each edge are wrong and must be cropped); ``"tile"``: a whole-image model of
    fixed size (``tile`` voxels per axis; the cosmic-web autoencoder).
``input_norm`` / ``output_norm``
    One :class:`Normalization` per channel: :meth:`Painter.paint` applies ``input_norm`` to
    the raw input and inverts ``output_norm`` on the network output, so Fields stay in
    physical units and the network sees O(1) numbers.

:meth:`Painter.infer` is the forward used for volume painting (for dm2gal the fully
convolutional dense form, for the others ``forward``); :meth:`Painter.paint` wraps it with
the normalizations, and :func:`bigpaint.painters.whole_array.paint_array` paints a whole
periodic array in memory (the reference chunked painting is compared against).

Checkpoints (:mod:`bigpaint.painters.checkpoint`) carry :meth:`Painter.metadata`.

Why hand-written: the transforms (EMBER eq. 7, the cosmic-web log transform eq. 2, affine
unit-variance scaling) are one line each, but must be invertible, JSON-serialisable and work
on numpy arrays and torch tensors alike; no library offers that contract.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from types import EllipsisType
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from torch import nn

from bigpaint.errors import ConfigError, ShapeError

__all__ = [
    "FORMAT_VERSION",
    "AffineNorm",
    "EmberNorm",
    "IdentityNorm",
    "LogLikeNorm",
    "Normalization",
    "Painter",
    "PainterConfig",
    "PainterMetadata",
    "PowerNorm",
    "apply_norms",
    "conv_nd",
    "crop_center",
    "invert_norms",
    "parse_norms",
]

PainterMode = Literal["valid", "same", "tile"]

#: Version of the checkpoint layout (:class:`PainterMetadata`) this bigpaint writes and the
#: newest it reads.
FORMAT_VERSION = 1


# ---------------------------------------------------------------- normalizations


class _Norm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def forward(self, x: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def inverse(self, y: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


def _xp(x: Any) -> Any:
    return torch if isinstance(x, torch.Tensor) else np


class IdentityNorm(_Norm):
    """No transform."""

    kind: Literal["identity"] = "identity"

    def forward(self, x: Any) -> Any:
        return x

    def inverse(self, y: Any) -> Any:
        return y


class AffineNorm(_Norm):
    """``y = (x - shift) / scale``; with ``shift=0`` and ``scale`` the rms of the training
    field, the unit-variance density scaling of the protohalo U-Net (Lucie-Smith/Berger-style
    input ``delta / sigma``)."""

    kind: Literal["affine"] = "affine"
    shift: float = 0.0
    scale: float = Field(1.0, gt=0)

    def forward(self, x: Any) -> Any:
        return (x - self.shift) / self.scale

    def inverse(self, y: Any) -> Any:
        return y * self.scale + self.shift


class PowerNorm(_Norm):
    """``y = ((x - shift) / scale)^(1 / exponent)``, values below ``shift`` mapped to 0, so
    the inverse ``x = scale * max(y, 0)^exponent + shift`` turns a painter's non-negative
    output into a field of at least ``shift``. As an output normalization with ``exponent <
    1`` it tempers the densest cells: the halo painter's calibration, whose exponent is fitted
    to the truth's large-scale correlation on the training simulations."""

    kind: Literal["power"] = "power"
    exponent: float = Field(1.0, gt=0)
    scale: float = Field(1.0, gt=0)
    shift: float = 0.0

    def forward(self, x: Any) -> Any:
        xp = _xp(x)
        return xp.clip((x - self.shift) / self.scale, 0, None) ** (1 / self.exponent)

    def inverse(self, y: Any) -> Any:
        xp = _xp(y)
        return self.scale * xp.clip(y, 0, None) ** self.exponent + self.shift


class EmberNorm(_Norm):
    """EMBER eq. 7: ``y = log(((x + offset) / x0)^q + 1) / k``, negatives clipped to 0.

    Table 2 of the paper: dark matter ``k=3, x0=1e7 Msun, q=1``; gas ``k=3, x0=1.5e6, q=1``;
    HI ``k=0.9, x0=1e4, q=0.2``. ``x0`` is in the units of the field. ``offset`` (0 in the
    paper, whose fields are masses) turns a contrast into a mass: a slab of ``d`` voxels of
    ``delta`` projects to ``sum delta``, and ``offset = d`` gives ``sum (1 + delta)``.
    """

    kind: Literal["ember"] = "ember"
    k: float = Field(3.0, gt=0)
    x0: float = Field(1.0, gt=0)
    q: float = Field(1.0, gt=0)
    offset: float = 0.0

    def forward(self, x: Any) -> Any:
        xp = _xp(x)
        return xp.log(xp.clip((x + self.offset) / self.x0, 0, None) ** self.q + 1) / self.k

    def inverse(self, y: Any) -> Any:
        xp = _xp(y)
        return self.x0 * xp.clip(xp.exp(self.k * y) - 1, 0, None) ** (1 / self.q) - self.offset


class LogLikeNorm(_Norm):
    """Cosmic-web GAN eq. 2: ``y = (2 log(x + c) - (b + a)) / (b - a)`` with ``a = log c``.

    Maps ``[0, e^b - c]`` to ``[-1, 1]``; the paper uses ``c = 1e-3`` and ``b = log 2632``
    (particles per pixel). With ``c = 0`` and ``a`` given it is eq. 1. ``x`` is first
    ``x + offset`` (0 in the paper; the projection depth for slabs of a contrast ``delta``).
    """

    kind: Literal["loglike"] = "loglike"
    c: float = Field(1e-3, ge=0)
    b: float = math.log(2632.0)
    a: float | None = None
    offset: float = 0.0

    def _a(self) -> float:
        if self.a is not None:
            return self.a
        if self.c <= 0:
            raise ConfigError("loglike normalization with c=0 needs a (eq. 1); give a=log(vmin)")
        return math.log(self.c)

    def forward(self, x: Any) -> Any:
        xp = _xp(x)
        a = self._a()
        v = xp.clip(x + self.offset + self.c, 1e-30, None)
        return (2 * xp.log(v) - (self.b + a)) / (self.b - a)

    def inverse(self, y: Any) -> Any:
        xp = _xp(y)
        a = self._a()
        return xp.exp((y * (self.b - a) + self.b + a) / 2) - self.c - self.offset


Normalization = Annotated[
    IdentityNorm | AffineNorm | PowerNorm | EmberNorm | LogLikeNorm,
    Field(discriminator="kind"),
]
_NORMS = TypeAdapter(list[Normalization])


def parse_norms(value: Any, channels: int, what: str) -> tuple[_Norm, ...]:
    """Validate a list of normalizations (dicts or models), one per channel or one for all."""
    if value is None:
        value = [IdentityNorm()]
    if isinstance(value, (dict, _Norm)):
        value = [value]
    try:
        norms = tuple(_NORMS.validate_python(list(value)))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            f"{what}: invalid normalization at {'.'.join(str(p) for p in err['loc'])}: "
            f"{err['msg']}; kinds are identity, affine, power, ember, loglike"
        ) from None
    if len(norms) == 1:
        norms = norms * channels
    if len(norms) != channels:
        raise ConfigError(
            f"{what}: give 1 or {channels} normalizations (one per channel), got {len(norms)}"
        )
    return norms


def _per_channel(norms: Sequence[_Norm], x: Any, channel_axis: int, inverse: bool) -> Any:
    if all(isinstance(n, IdentityNorm) for n in norms):
        return x
    if x.shape[channel_axis] != len(norms):
        raise ShapeError(
            f"array has {x.shape[channel_axis]} channels on axis {channel_axis}, "
            f"the normalizations describe {len(norms)}"
        )
    parts = []
    for c, n in enumerate(norms):
        sl = (slice(None),) * (channel_axis % x.ndim) + (slice(c, c + 1),)
        parts.append(n.inverse(x[sl]) if inverse else n.forward(x[sl]))
    return (
        torch.cat(parts, channel_axis)
        if isinstance(x, torch.Tensor)
        else np.concatenate(parts, channel_axis)
    )


def apply_norms(norms: Sequence[_Norm], x: Any, channel_axis: int = 0) -> Any:
    """Apply one normalization per channel (numpy array or torch tensor)."""
    return _per_channel(norms, x, channel_axis, inverse=False)


def invert_norms(norms: Sequence[_Norm], y: Any, channel_axis: int = 0) -> Any:
    """Undo :func:`apply_norms`."""
    return _per_channel(norms, y, channel_axis, inverse=True)


# ---------------------------------------------------------------- metadata


class PainterConfig(BaseModel):
    """Base of every family's architecture hyper-parameters (strict: typos are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PainterMetadata(BaseModel):
    """What a checkpoint says about its painter (``metadata.json``).

    Attributes
    ----------
    format, format_version : str, int
        ``"bigpaint-painter"`` and the checkpoint format version.
    family : str
        Registry name (``halo-painter``, ``protohalo-unet``, ``dm2gal``, ``ember``,
        ``cosmic-web-gan``).
    config : dict
        Architecture hyper-parameters (the family's config model, as JSON).
    ndim, in_channels, out_channels : int
    mode : {"valid", "same", "tile"}
    context : int
        Voxels of neighbourhood needed on each side of a painted voxel (per axis).
    alignment : int
        Chunk origins must be multiples of this (voxels).
    tile : int or None
        Fixed input size per axis for ``mode="tile"``.
    input_norm, output_norm : list of normalizations
    parameter_count : int
        Trainable parameters of the painter (critics and encoders' partners excluded).
    parameter_shapes : dict
        Name to shape of every tensor of the state dict (checked on load).
    provenance : dict
        Training data, configuration, steps, metrics, bigpaint version, creation time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["bigpaint-painter"] = "bigpaint-painter"
    format_version: int
    family: str
    config: dict[str, Any]
    ndim: int
    in_channels: int
    out_channels: int
    mode: PainterMode
    context: int
    alignment: int
    tile: int | None = None
    input_norm: list[Normalization]
    output_norm: list[Normalization]
    parameter_count: int
    parameter_shapes: dict[str, list[int]]
    provenance: dict[str, Any] = Field(default_factory=dict)


# ---------------------------------------------------------------- helpers for families


def conv_nd(ndim: int) -> type[nn.Conv1d | nn.Conv2d | nn.Conv3d]:
    """``nn.Conv1d``/``Conv2d``/``Conv3d`` for ``ndim`` spatial axes (1-D twins probe contexts)."""
    convs: dict[int, type[nn.Conv1d | nn.Conv2d | nn.Conv3d]] = {
        1: nn.Conv1d,
        2: nn.Conv2d,
        3: nn.Conv3d,
    }
    return convs[ndim]


def conv_transpose_nd(ndim: int) -> type[nn.Module]:
    return {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[ndim]


def max_pool_nd(ndim: int) -> type[nn.Module]:
    return {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[ndim]


def batch_norm_nd(ndim: int) -> type[nn.Module]:
    return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[ndim]


def crop_center(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop the trailing ``len(size)`` axes of ``x`` to ``size`` around their centres."""
    nd = len(size)
    sl: list[slice | EllipsisType] = [Ellipsis]
    for n, m in zip(x.shape[-nd:], size, strict=True):
        if (n - m) % 2 or m > n:
            raise ShapeError(f"cannot centre-crop {n} voxels to {m}")
        c = (n - m) // 2
        sl.append(slice(c, c + m))
    return x[tuple(sl)]


# ---------------------------------------------------------------- the painter


class Painter(nn.Module):
    """Base class of every painter family.

    Subclasses set the class attributes, build their layers in ``__init__(config)`` and
    implement ``forward`` (and override :meth:`derive_context` for analytic chains).

    Attributes
    ----------
    family : str
        Registry name.
    Config : type of PainterConfig
        The family's architecture hyper-parameters.
    mode : {"valid", "same", "tile"}
    config : PainterConfig
    input_norm, output_norm : tuple of Normalization
        One per channel; identity unless set by training (see :meth:`set_normalization`).
    """

    family: ClassVar[str]
    Config: ClassVar[type[PainterConfig]]
    mode: ClassVar[PainterMode]
    spatial_ndim: ClassVar[int]
    #: CPU inference is faster with channels-last weights (see :meth:`prepare_inference`).
    cpu_channels_last: ClassVar[bool] = False

    def __init__(self, config: PainterConfig, *, ndim: int | None = None) -> None:
        super().__init__()
        self.config = config
        self._ndim = ndim if ndim is not None else self.spatial_ndim
        self.input_norm: tuple[_Norm, ...] = (IdentityNorm(),) * self.in_channels
        self.output_norm: tuple[_Norm, ...] = (IdentityNorm(),) * self.out_channels

    # -- description ------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        """Spatial axes (2 or 3; 1 for the context-probing twins)."""
        return self._ndim

    @property
    def in_channels(self) -> int:
        return int(self.config.in_channels)  # type: ignore[attr-defined]  # each family's config declares it

    @property
    def out_channels(self) -> int:
        return int(self.config.out_channels)  # type: ignore[attr-defined]  # each family's config declares it

    @property
    def context(self) -> int:
        """Voxels of neighbourhood needed on each side of a painted voxel, on every axis.

        For ``mode="valid"`` the output is the input cropped by this much on each side; for
        ``"same"`` it is the architectural receptive field (half-width), the context a chunk
        needs for its core to equal whole-box inference exactly; 0 for ``"tile"``.
        """
        # mypy checks a class against Hashable with its instances' __hash__ (torch's self: object)
        return _cached_context(type(self), self.config.model_dump_json())  # type: ignore[arg-type]  # classes hash

    @property
    def receptive_field(self) -> int:
        """Full width of the receptive field along one axis, ``2 * context + 1`` voxels."""
        return 2 * self.context + 1

    @property
    def alignment(self) -> int:
        """Offset granularity in voxels: chunk origins must be multiples of it."""
        return 1

    @property
    def tile(self) -> int | None:
        """Input size per axis of a ``mode="tile"`` painter (None otherwise)."""
        return None

    @classmethod
    def derive_context(cls, config: PainterConfig) -> int:
        """Context per side (voxels) of the architecture ``config``.

        Default: probe the structural receptive field of a 1-D twin of the network (same
        kernels, strides, poolings and depth; :meth:`probe_config` may narrow it to one
        filter) with :func:`bigpaint.context.probe_context`. Valid-convolution chains override
        this with :func:`bigpaint.context.receptive_field_context`.
        """
        from bigpaint.context import probe_context

        twin = cls(cls.probe_config(config), ndim=1)
        return probe_context(twin, ndim=1, in_channels=twin.in_channels, alignment=twin.alignment)

    @classmethod
    def probe_config(cls, config: PainterConfig) -> PainterConfig:
        """Config of the twin probed by :meth:`derive_context` (default: ``config``)."""
        return config

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape for a spatial input shape (voxels)."""
        shape = tuple(int(n) for n in input_shape)
        self.check_input_shape(shape)
        if self.mode == "valid":
            return tuple(n - 2 * self.context for n in shape)
        return shape

    def check_input_shape(self, shape: Sequence[int]) -> None:
        """Raise :class:`ShapeError` for spatial shapes the painter cannot take."""
        if len(shape) != self.ndim:
            raise ShapeError(
                f"{self.family} takes {self.ndim}-D inputs, got spatial shape {tuple(shape)}"
            )
        if self.mode == "valid" and any(n < 2 * self.context + 1 for n in shape):
            raise ShapeError(
                f"{self.family} needs at least {2 * self.context + 1} voxels per axis "
                f"(context {self.context} on each side), got {tuple(shape)}"
            )
        if self.mode == "same" and any(n % self.alignment for n in shape):
            raise ShapeError(
                f"{self.family} needs sizes divisible by {self.alignment} "
                f"({int(math.log2(self.alignment))} poolings), got {tuple(shape)}"
            )
        if self.mode == "tile" and any(n != self.tile for n in shape):
            raise ShapeError(
                f"{self.family} takes {self.tile}^{self.ndim} tiles, got {tuple(shape)}"
            )

    def parameter_count(self) -> int:
        """Trainable parameters of the painter."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # -- normalization and inference --------------------------------------------------
    def set_normalization(self, input_norm: Any = None, output_norm: Any = None) -> None:
        """Set the per-channel input/output normalizations (dicts or models; one or one per channel)."""
        if input_norm is not None:
            self.input_norm = parse_norms(input_norm, self.in_channels, f"{self.family} input_norm")
        if output_norm is not None:
            self.output_norm = parse_norms(
                output_norm, self.out_channels, f"{self.family} output_norm"
            )

    def prepare_inference(self) -> Painter:
        """Freeze the painter in eval mode, in its fastest memory layout for painting.

        On CPU, a family with ``cpu_channels_last`` gets channels-last weights, oneDNN's fast
        path for 3-D convolutions (1.5x for the protohalo U-Net on a 2-core x86-64 CPU; the halo
        painter's 10-filter convolutions run 10 % slower that way, so it keeps the default),
        and :meth:`infer` then feeds it channels-last inputs. Results equal the default
        layout's to float rounding. For painters that only paint, never for training.

        Returns
        -------
        Painter
            ``self``.
        """
        self.eval().requires_grad_(False)
        p = next(self.parameters(), None)
        if self.cpu_channels_last and self.ndim == 3 and p is not None and p.device.type == "cpu":
            self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's Module.to overloads omit memory_format
            self._channels_last = True
        return self

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """The forward used to paint volumes: ``(B, C_in, *S) -> (B, C_out, *output_shape(S))``.

        Defaults to :meth:`forward` (on channels-last inputs after :meth:`prepare_inference`
        chose that layout); dm2gal overrides it with its dense form.
        """
        if getattr(self, "_channels_last", False) and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return self(x)

    @torch.no_grad()
    def paint(self, x: np.ndarray) -> np.ndarray:
        """Paint one raw (physical-units) array ``(C_in, *S)`` to ``(C_out, *output_shape(S))``.

        Applies ``input_norm``, runs :meth:`infer` in eval mode on the module's device and
        dtype, inverts ``output_norm``; returns float32.
        """
        x = np.asarray(x)
        if x.ndim == self.ndim:
            x = x[None]
        if x.ndim != self.ndim + 1 or x.shape[0] != self.in_channels:
            raise ShapeError(
                f"{self.family} paints arrays of shape ({self.in_channels}, ...{self.ndim} axes), "
                f"got {x.shape}"
            )
        self.check_input_shape(x.shape[1:])
        p = next(self.parameters())
        was_training = self.training
        self.eval()
        try:
            t = torch.as_tensor(apply_norms(self.input_norm, x.astype(np.float32)), device=p.device)
            y = self.infer(t[None].to(p.dtype))[0]
            out = invert_norms(self.output_norm, y.float()).cpu().numpy()
        finally:
            self.train(was_training)
        return out.astype(np.float32, copy=False)

    def metadata(self, provenance: dict[str, Any] | None = None) -> PainterMetadata:
        """Describe this painter for a checkpoint (see :class:`PainterMetadata`)."""
        return PainterMetadata(
            format_version=FORMAT_VERSION,
            family=self.family,
            config=json.loads(self.config.model_dump_json()),
            ndim=self.ndim,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            mode=self.mode,
            context=self.context,
            alignment=self.alignment,
            tile=self.tile,
            input_norm=list(self.input_norm),
            output_norm=list(self.output_norm),
            parameter_count=self.parameter_count(),
            parameter_shapes={k: list(v.shape) for k, v in self.state_dict().items()},
            provenance=dict(provenance or {}),
        )


@functools.lru_cache(maxsize=256)
def _cached_context(cls: type[Painter], config_json: str) -> int:
    if cls.mode == "tile":
        return 0
    return int(cls.derive_context(cls.Config.model_validate_json(config_json)))
