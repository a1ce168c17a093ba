"""The typed specs of the statistics that judge a field, read by every front end.

One spec per statistic: :class:`PowerSpec` (P(k), or with a reference the auto and cross
spectra, T(k), r_c(k) and stochasticity), :class:`BispectrumSpec` (B(k1, k2, theta) or
equilateral B(k)) and :class:`OnepointSpec` (pixel PDF, peaks, sub-volume means, Dice).
``bigpaint stats power|bispectrum|onepoint``'s flags and YAML file (the ``*Config`` classes:
the spec plus its ``cluster``) become one, as a pipeline's ``power`` and ``bispectrum`` stages
do (they set ``out`` and ``plot`` themselves), and :func:`run_power`, :func:`run_bispectrum`
and :func:`run_onepoint` run it through :mod:`bigpaint.stats.report`.

``a`` is the field to judge and ``b`` its reference (the truth); both are Field paths. Of a
4-D Field (e.g. halo counts per mass bin) ``channel`` takes one channel or their sum
(:func:`select_channel`); a 3-D Field is used as it is.

The specs import nothing heavy: a pipeline or the CLI validates them before any statistic,
array library or cluster is loaded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bigpaint.config import ClusterConfig, LocalClusterConfig

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "BispectrumConfig",
    "BispectrumSpec",
    "Channel",
    "OnepointConfig",
    "OnepointSpec",
    "PowerConfig",
    "PowerSpec",
    "run_bispectrum",
    "run_onepoint",
    "run_power",
    "select_channel",
]

log = logging.getLogger(__name__)

#: Which channel of a 4-D Field: its index, ``"sum"`` of all, or None (the Field must be 3-D).
Channel = Literal["sum"] | int | None


def select_channel(url: str, channel: Channel, where: str) -> Any:
    """A 3-D Field from ``url``: one channel of a 4-D Field, or their sum (``"sum"``).

    A 3-D Field is returned as it is (its path); the sum keeps the Field's metadata, so a
    sum of halo counts per mass bin is the total halo count.
    """
    from bigpaint.errors import ConfigError
    from bigpaint.field import data_var, open_field

    ds = open_field(url)
    var = data_var(ds)
    if var.ndim == 3 or channel is None:
        return url if var.ndim == 3 else ds
    dim = str(var.dims[0])  # a Field's dimensions are named by strings
    log.info(
        "%s: %s has %d channels; using %s (choose with --channel)",
        where,
        url,
        var.shape[0],
        "their sum" if channel == "sum" else f"channel {channel}",
    )
    if channel == "sum":
        summed = var.sum(dim, keep_attrs=True).astype(var.dtype)
        out = ds.drop_vars([var.name, dim], errors="ignore").assign({var.name: summed})
    else:
        n = var.shape[0]
        if not 0 <= channel < n:
            raise ConfigError(f"{where}: channel {channel} of {url} does not exist (it has {n})")
        out = ds.isel({dim: channel}).drop_vars(dim, errors="ignore")
    out.attrs = dict(ds.attrs)
    out.encoding.update(ds.encoding)
    return out


class _FieldPair(BaseModel):
    """The keys every statistic shares: the fields, their channel and what to write."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: str
    b: str | None = None
    channel: Channel = "sum"
    out: str | None = None
    plot: str | None = None

    def fields(self, where: str) -> tuple[Any, Any]:
        """``a`` and ``b`` (None when not given) with :attr:`channel` selected."""
        a = select_channel(self.a, self.channel, where)
        return a, None if self.b is None else select_channel(self.b, self.channel, where)


def _none(mas: str | None) -> str | None:
    """``"none"`` (any case) is None: no compensation."""
    return None if mas is None or mas.lower() == "none" else mas


def _check_mas(where: str, *pairs: tuple[Any, str | None]) -> None:
    """Refuse a mass assignment that cannot be resolved (a bad name, ``auto`` on a Field
    with no record) from the Fields' metadata alone, before any work."""
    from bigpaint.stats.inputs import as_input, resolve_mas

    for field, mas in pairs:
        if field is not None:
            resolve_mas(as_input(field, where=where), mas, where)


class PowerSpec(_FieldPair):
    """P(k) of ``a`` (multipoles along ``los``), or with ``b`` the comparison of the two
    (see :func:`bigpaint.stats.report.power_report`); k in h/Mpc.

    Attributes
    ----------
    mas, mas_b : str or None
        Mass assignment of ``a`` and ``b`` to compensate: ``auto`` (the Field's record),
        NGP, CIC, TSC, PCS or none.
    compensation : {"sinc", "aliased", "none"}
    dk, kmin, kmax : float, optional
        Bin width and range in h/Mpc (defaults: k_F, k_F, sqrt(3) k_Nyq).
    nbins : int, optional
    log : bool
        Logarithmic bins.
    los : {"x", "y", "z"}
        Line of sight of the multipoles.
    multipoles : tuple of {0, 2, 4}
    contrast : bool, optional
        Use field/mean - 1 (default: for density and count kinds).
    """

    mas: str | None = "auto"
    mas_b: str | None = "auto"
    compensation: Literal["sinc", "aliased", "none"] = "sinc"
    dk: float | None = Field(None, gt=0)
    kmin: float | None = Field(None, ge=0)
    kmax: float | None = Field(None, gt=0)
    nbins: int | None = Field(None, ge=1)
    log: bool = False
    los: Literal["x", "y", "z"] = "z"
    multipoles: tuple[Literal[0, 2, 4], ...] = Field((0, 2, 4), min_length=1)
    contrast: bool | None = None

    _mas_none = field_validator("mas", "mas_b")(_none)

    def check(self, where: str) -> None:
        """Refuse a missing Field or channel, or a mass assignment that cannot be resolved,
        from the Fields' metadata alone (before a cluster starts)."""
        a, b = self.fields(where)
        _check_mas(where, (a, self.mas), (b, self.mas_b))


class BispectrumSpec(_FieldPair):
    """B(k1, k2, theta) of ``a`` (or equilateral B(k)), and of the reference ``b`` with the
    ratio (see :func:`bigpaint.stats.report.bispectrum_report`); k in h/Mpc, theta in
    radians.

    Attributes
    ----------
    k1, k2 : float, optional
        The two sides (with ``theta``).
    theta : list of float, optional
        Angles between k1 and k2.
    equilateral : list of float, optional
        Equilateral sides instead of ``k1``, ``k2`` and ``theta``.
    mas : str or None
        Mass assignment of ``a`` and ``b`` to compensate (as :class:`PowerSpec`).
    shell_width : float, optional
        In h/Mpc (default k_F).
    method : {"auto", "crop", "distributed"}
    contrast : bool, optional
    """

    k1: float | None = Field(None, gt=0)
    k2: float | None = Field(None, gt=0)
    theta: list[float] | None = None
    equilateral: list[float] | None = None
    mas: str | None = "auto"
    shell_width: float | None = Field(None, gt=0)
    method: Literal["auto", "crop", "distributed"] = "auto"
    contrast: bool | None = None

    _mas_none = field_validator("mas")(_none)

    def check(self, where: str) -> None:
        """As :meth:`PowerSpec.check`."""
        a, b = self.fields(where)
        _check_mas(where, (a, self.mas), (b, self.mas))


class OnepointSpec(_FieldPair):
    """Pixel PDF, peak counts and sub-volume means of ``a`` (and ``b``) and the Dice overlap
    of the pair (see :func:`bigpaint.stats.report.onepoint_report`).

    ``out`` and ``plot`` are path prefixes (``<out>_pdf_a.csv``, ..., ``<plot>_onepoint.png``).

    Attributes
    ----------
    bins : int
        Pixel PDF bins.
    log : bool
        Logarithmic PDF bins (positive values).
    range : tuple of float, optional
        PDF (and peak) range, in the field's units.
    peak_bins : int
    subvolumes : int
        Sub-volumes per axis (means, Dice).
    top : list of float, optional
        Dice top fractions (default: :data:`bigpaint.stats.dice.DEFAULT_TOP`, 1% to 80%).
    """

    bins: int = Field(100, ge=1)
    log: bool = False
    range: tuple[float, float] | None = None
    peak_bins: int = Field(50, ge=1)
    subvolumes: int = Field(4, ge=1)
    top: list[float] | None = Field(None, min_length=1)

    def check(self, where: str) -> None:
        """Refuse a missing Field or channel before a cluster starts."""
        self.fields(where)


class PowerConfig(PowerSpec):
    """``bigpaint stats power --config FILE``: a :class:`PowerSpec` and its cluster."""

    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)


class BispectrumConfig(BispectrumSpec):
    """``bigpaint stats bispectrum --config FILE``: a :class:`BispectrumSpec` and its cluster."""

    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)


class OnepointConfig(OnepointSpec):
    """``bigpaint stats onepoint --config FILE``: an :class:`OnepointSpec` and its cluster."""

    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)


def run_power(spec: PowerSpec, *, where: str = "power") -> xr.Dataset:
    """Compute (and write to ``spec.out``/``spec.plot``) the power spectra of ``spec``."""
    from bigpaint.stats.report import power_report

    a, b = spec.fields(where)
    return power_report(
        a,
        b,
        out=spec.out,
        plot=spec.plot,
        mas=spec.mas,
        mas_b=spec.mas_b,
        compensation=spec.compensation,
        dk=spec.dk,
        kmin=spec.kmin,
        kmax=spec.kmax,
        nbins=spec.nbins,
        log=spec.log,
        los=spec.los,
        multipoles=list(spec.multipoles),
        contrast=spec.contrast,
    )


def run_bispectrum(spec: BispectrumSpec, *, where: str = "bispectrum") -> dict[str, xr.Dataset]:
    """Compute (and write) the bispectra of ``spec``: ``{"a": ..., "b": ...}``."""
    from bigpaint.stats.report import bispectrum_report

    a, b = spec.fields(where)
    return bispectrum_report(
        a,
        b,
        k1=spec.k1,
        k2=spec.k2,
        theta=spec.theta,
        equilateral=spec.equilateral,
        out=spec.out,
        plot=spec.plot,
        mas=spec.mas,
        shell_width=spec.shell_width,
        method=spec.method,
        contrast=spec.contrast,
    )


def run_onepoint(spec: OnepointSpec, *, where: str = "onepoint") -> dict[str, xr.Dataset]:
    """Compute (and write) the one-point statistics of ``spec`` (tables by name)."""
    from bigpaint.stats.dice import DEFAULT_TOP
    from bigpaint.stats.report import onepoint_report

    a, b = spec.fields(where)
    return onepoint_report(
        a,
        b,
        out=spec.out,
        plot=spec.plot,
        bins=spec.bins,
        log=spec.log,
        value_range=spec.range,
        peak_bins=spec.peak_bins,
        subvolumes=spec.subvolumes,
        top=list(DEFAULT_TOP) if spec.top is None else spec.top,
    )
