"""Open and check the Fields of an evaluation before any data is read.

Every Field must be a count kind, and all must share kind, grid, box, redshift (when
recorded) and mass bins (:func:`bigpaint.mass_bins.mass_bins_of`); the truth must be NGP
counts (its ``mass_assignment`` record), since its white ``1/n`` shot noise rests on that.
The optional matter Field (:mod:`bigpaint.stats.truth_noise`) must be a density or contrast
on the same grid, box and redshift. Each check fails with one line naming the Field and the
fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from bigpaint.errors import ConfigError, MetadataError, ShapeError
from bigpaint.stats.comparison import PAINTED, TRUTH
from bigpaint.stats.evaluate_config import EvaluateConfig
from bigpaint.stats.inputs import COUNT_KINDS, DEPOSIT_KINDS

__all__ = ["Source", "check_inputs", "k_nyquist", "open_matter"]

MATTER = "matter"
_RESERVED = {PAINTED, TRUTH, MATTER}
WHERE = "evaluate"


def _read(obj: Any, name: str) -> tuple[xr.Dataset, str, da.Array]:
    """A Field path or opened Field: the Dataset, its label and its data as a dask array."""
    from bigpaint.field import data_var, open_field

    if isinstance(obj, (str, os.PathLike)):
        ds, label = open_field(str(obj)), str(obj)
    elif isinstance(obj, xr.Dataset):
        ds, label = obj, str(obj.encoding.get("bigpaint_url", name))
    else:
        raise ConfigError(
            f"{WHERE}: {name} must be a Field path or an opened Field, got {type(obj).__name__}"
        )
    var = data_var(ds)
    data = var.data if isinstance(var.data, da.Array) else da.from_array(np.asarray(var.data))
    return ds, label, data


@dataclass(frozen=True)
class Source:
    name: str
    label: str
    data: da.Array
    meta: Any
    edges: np.ndarray
    window: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[1:])


def _open(obj: Any, name: str) -> Source:
    from bigpaint.field import field_meta
    from bigpaint.mass_assignment import mass_assignment_of
    from bigpaint.mass_bins import mass_bins_of

    ds, label, data = _read(obj, name)
    meta = field_meta(ds)
    if data.ndim == 3:
        data = data[None]
    who = f"{WHERE}: {name} ({label})"
    if meta.kind not in COUNT_KINDS:
        raise MetadataError(
            f"{who} is a {meta.kind!r} Field; evaluate compares counts per cell "
            f"({', '.join(sorted(COUNT_KINDS))}), e.g. simulate's halo_counts.zarr"
        )
    edges = mass_bins_of(meta, who)
    if edges is None:
        raise MetadataError(
            f"{who} records no mass bins (provenance.mass_bins, Msun/h); write it with "
            "bigpaint simulate or paint it with a painter trained on such a Field"
        )
    if len(edges) - 1 != data.shape[0]:
        raise MetadataError(
            f"{who} has {data.shape[0]} channel(s) but records {len(edges) - 1} mass bin(s); "
            "its provenance.mass_bins must hold one more edge than it has channels"
        )
    ma = mass_assignment_of(meta, who)
    window = "not recorded" if ma is None else str(ma.scheme)
    return Source(name, label, data, meta, edges, window)


def _check_same(ref: Source, s: Source) -> None:
    who = f"{WHERE}: {s.name} ({s.label})"
    if s.meta.kind != ref.meta.kind:
        raise MetadataError(
            f"{who} is a {s.meta.kind!r} Field, the truth {ref.meta.kind!r}; compare Fields of "
            "one kind"
        )
    if s.shape != ref.shape:
        raise ShapeError(
            f"{who} has grid {s.shape}, the truth {ref.shape}; evaluate Fields on the same grid "
            "(same cell size and box)"
        )
    if not np.allclose(s.meta.box_size, ref.meta.box_size, rtol=1e-9, atol=0):
        raise MetadataError(
            f"{who} has box {tuple(s.meta.box_size)} Mpc/h, the truth "
            f"{tuple(ref.meta.box_size)}; compare Fields of the same box"
        )
    za, zb = s.meta.redshift, ref.meta.redshift
    if za is not None and zb is not None and abs(za - zb) > 1e-6:
        raise MetadataError(
            f"{who} is at redshift {za:g}, the truth at {zb:g}; compare Fields of the same redshift"
        )
    if len(s.edges) != len(ref.edges) or not np.allclose(s.edges, ref.edges, rtol=1e-6):
        raise MetadataError(
            f"{who} has mass bins {s.edges.tolist()} Msun/h, the truth {ref.edges.tolist()}; "
            "compare Fields with the same mass bins"
        )


def k_nyquist(n: int, box: float) -> float:
    return math.pi * n / box


def check_inputs(
    painted: Any,
    truth: Any,
    baselines: Mapping[str, Any] | None = None,
    config: EvaluateConfig | None = None,
    matter: Any = None,
) -> list[Source]:
    """Open and check the Fields and settings of an evaluation, reading no data.

    Returns the Fields in order truth, painted, baselines (for :func:`evaluate`); the matter
    Field, when given, is checked against the truth (:func:`open_matter`).

    Raises
    ------
    MetadataError, ShapeError, ConfigError
        One line naming the Field (or setting) and the fix.
    """
    cfg = config or EvaluateConfig()
    bases = dict(baselines or {})
    for name in bases:
        if not isinstance(name, str) or not name.isidentifier() or name in _RESERVED:
            raise ConfigError(
                f"{WHERE}: baseline name {name!r} must be an identifier other than "
                f"{sorted(_RESERVED)} (e.g. linear, quadratic)"
            )
    t = _open(truth, TRUTH)
    sources = [t, _open(painted, PAINTED)] + [_open(v, k) for k, v in bases.items()]
    n = t.shape[0]
    if len(set(t.shape)) != 1 or not np.allclose(t.meta.box_size, t.meta.box_size[0], rtol=1e-9):
        raise ShapeError(
            f"{WHERE}: truth ({t.label}) has grid {t.shape} and box {tuple(t.meta.box_size)} "
            "Mpc/h; spectra need a cubic grid in a cubic box"
        )
    for s in sources[1:]:
        _check_same(t, s)
    if t.window != "NGP":
        has = {"not recorded": "records no mass assignment", "None": "records no window"}.get(
            t.window, f"has mass assignment {t.window}"
        )
        raise MetadataError(
            f"{WHERE}: truth ({t.label}) {has}; evaluate needs NGP halo counts (as bigpaint "
            "simulate writes them), whose shot noise is white"
        )
    nbins = len(t.edges) - 1
    bad = [c for c in cfg.exclude_bins if not 0 <= c < nbins]
    if bad or cfg.total_from >= nbins:
        what = f"exclude_bins {bad}" if bad else f"total_from {cfg.total_from}"
        raise ConfigError(f"{WHERE}: {what} names a mass bin that does not exist (0..{nbins - 1})")
    if not [c for c in range(cfg.total_from, nbins) if c not in cfg.exclude_bins]:
        raise ConfigError(
            f"{WHERE}: total_from {cfg.total_from} and exclude_bins {list(cfg.exclude_bins)} "
            "leave no mass bin in the total; include one"
        )
    box = float(t.meta.box_size[0])
    kf, knyq = 2 * math.pi / box, k_nyquist(n, box)
    if not kf < cfg.kmax < knyq:
        raise ConfigError(
            f"{WHERE}: kmax {cfg.kmax:g} h/Mpc must lie between k_F = {kf:.4g} and k_Nyq = "
            f"{knyq:.4g} h/Mpc of this grid; set kmax"
        )
    width = kf if cfg.shell_width is None else cfg.shell_width
    top = math.sqrt(3.0) * knyq
    for k in (cfg.k1, cfg.k2):
        if k - width / 2 <= 0 or k + width / 2 > top:
            raise ConfigError(
                f"{WHERE}: bispectrum side {k:g} h/Mpc with shell width {width:.4g} leaves (0, "
                f"sqrt(3) k_Nyq = {top:.4g}] h/Mpc of this grid; set k1/k2"
            )
    if any(not 0 <= th <= math.pi for th in cfg.theta):
        raise ConfigError(f"{WHERE}: theta must be angles in [0, pi] radians, got {cfg.theta}")
    if matter is not None:
        open_matter(matter, t)
    return sources


def open_matter(obj: Any, truth: Source) -> da.Array:
    """Open the simulation's matter density as a 3-D dask array and check it against the truth.

    Parameters
    ----------
    obj : Field path or opened Field
        Density or contrast (``delta``) of the matter of the truth's simulation, at the
        truth's redshift, on its grid; any mass assignment (its window cancels in the ratios
        it enters).
    truth : Source
        The opened truth.

    Raises
    ------
    MetadataError, ShapeError, ConfigError
        One line naming the problem and the fix.
    """
    from bigpaint.field import field_meta

    ds, label, data = _read(obj, MATTER)
    meta = field_meta(ds)
    who = f"{WHERE}: matter ({label})"
    if meta.kind in COUNT_KINDS or meta.kind not in DEPOSIT_KINDS:
        raise MetadataError(
            f"{who} is a {meta.kind!r} Field; give the simulation's matter density or contrast "
            "(e.g. simulate's density.zarr)"
        )
    if data.ndim == 4 and data.shape[0] == 1:
        data = data[0]
    shape = tuple(int(s) for s in data.shape)
    if shape != truth.shape:
        raise ShapeError(
            f"{who} has grid {shape}, the truth {truth.shape}; deposit the matter on the "
            "truth's grid"
        )
    if not np.allclose(meta.box_size, truth.meta.box_size, rtol=1e-9, atol=0):
        raise MetadataError(
            f"{who} has box {tuple(meta.box_size)} Mpc/h, the truth "
            f"{tuple(truth.meta.box_size)}; give the matter of the truth's simulation"
        )
    za, zb = meta.redshift, truth.meta.redshift
    if za is None or (zb is not None and abs(za - zb) > 1e-6):
        have = "records no redshift" if za is None else f"is at redshift {za:g}"
        raise MetadataError(
            f"{who} {have}, the truth at {zb}; give the matter at the truth's redshift"
        )
    return data
