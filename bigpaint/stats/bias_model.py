"""A fitted bias model: least squares from chunked moments, and its versioned JSON file.

The model of halo counts in mass bin ``b`` per cell is

    N_b = nbar_b (1 + b1 delta_R)                                  (order 1, linear bias)
    N_b = nbar_b (1 + b1 delta_R + (b2 / 2) O2 + bs2 Os2)           (order 2)

with the operators of :mod:`bigpaint.stats.bias_operators`. It is linear in the amplitudes
``a = nbar (1, b1, b2/2, bs2)``, so the fit is ordinary least squares of the counts ``y`` on
``X = [1, delta_R, O2, Os2]`` per cell. Everything the fit and its errors need is a handful
of sums over cells, which add up block by block and box by box (:class:`BiasMoments`):
``X^T X``, ``X^T y``, ``y^T y`` and ``sum_i y_i x_i x_i^T``.

Errors. Counts are taken as Poisson, ``Var(y_i) = E(y_i)``, estimated by ``y_i`` itself; the
least-squares covariance is then the sandwich ``(X^T X)^-1 (sum_i y_i x_i x_i^T) (X^T X)^-1``
(it needs no assumption about the mean model being right), and the errors of ``nbar``, ``b1``,
``b2``, ``bs2`` follow from ``a`` by the delta method. ``residual_over_poisson`` is the mean
squared residual over the mean count: 1 for Poisson scatter about the model, above 1 when the
model misses structure or the tracers are super-Poisson (then the stated errors are too
small by about its square root), below 1 for sub-Poisson tracers (halo exclusion).

The file is JSON (never pickle), with a ``format`` tag and a ``version``; loading validates
every field and refuses anything else with one line.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ConfigDict, TypeAdapter, ValidationError

from bigpaint.errors import BigpaintError, ConfigError, MetadataError
from bigpaint.version import __version__

__all__ = [
    "FORMAT",
    "VERSION",
    "BiasModel",
    "BiasModelError",
    "BiasMoments",
    "coefficient_names",
    "resolve_bias_model",
    "solve_bias",
]

#: The ``format`` tag of a bias-model file.
FORMAT = "bigpaint-bias-model"
#: The newest file version this bigpaint reads and the one it writes.
VERSION = 1

#: What each model is called in provenance and messages.
MODEL_NAMES = {1: "linear bias", 2: "second-order local bias"}


class BiasModelError(BigpaintError, ValueError):
    """A file is not a bias model, is damaged, or was written by a newer bigpaint."""


def coefficient_names(order: int) -> tuple[str, ...]:
    """``("nbar", "b1")`` for order 1, ``("nbar", "b1", "b2", "bs2")`` for order 2."""
    if order not in (1, 2):
        raise ConfigError(f"bias order must be 1 (linear) or 2 (second-order), got {order!r}")
    return ("nbar", "b1") if order == 1 else ("nbar", "b1", "b2", "bs2")


# ---------------------------------------------------------------- moments and solve


@dataclass(frozen=True)
class BiasMoments:
    """Sums over cells that determine a least-squares bias fit (``P`` regressors, ``B`` bins).

    Attributes
    ----------
    xx : (P, P) array
        ``sum_i x_i x_i^T`` with ``x_i = (1, delta_R, [O2, Os2])`` of cell ``i``.
    xy : (P, B) array
        ``sum_i x_i y_bi`` (the first row is the total count per bin).
    yy : (B,) array
        ``sum_i y_bi^2``.
    yxx : (B, P, P) array
        ``sum_i y_bi x_i x_i^T`` (the Poisson variance estimate of the sandwich).
    """

    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray
    yxx: np.ndarray

    @property
    def n_cells(self) -> int:
        return round(float(self.xx[0, 0]))

    @classmethod
    def from_flat(cls, flat: np.ndarray, n_regressors: int, n_bins: int) -> BiasMoments:
        p, b = n_regressors, n_bins
        sizes = np.cumsum([p * p, p * b, b])
        xx, xy, yy, yxx = np.split(np.asarray(flat, np.float64), sizes)
        return cls(xx.reshape(p, p), xy.reshape(p, b), yy, yxx.reshape(b, p, p))

    def __add__(self, other: BiasMoments) -> BiasMoments:
        return BiasMoments(
            self.xx + other.xx, self.xy + other.xy, self.yy + other.yy, self.yxx + other.yxx
        )

    def residuals(self, amplitudes: np.ndarray) -> np.ndarray:
        """``sum_i (y_bi - x_i . a_b)^2`` per bin for amplitudes ``a`` of shape (B, P)."""
        a = np.asarray(amplitudes, np.float64)
        return (
            self.yy
            - 2.0 * np.einsum("bp,pb->b", a, self.xy)
            + np.einsum("bp,pq,bq->b", a, self.xx, a)
        )


def moment_block(*blocks: np.ndarray, n_ops: int) -> np.ndarray:
    """The flattened :class:`BiasMoments` of one block: ``n_ops`` operators, then the counts."""
    ops, counts = blocks[:n_ops], blocks[n_ops:]
    n = ops[0].size
    x = np.empty((n_ops + 1, n))
    x[0] = 1.0
    for k, op in enumerate(ops):
        x[k + 1] = op.ravel()
    y = np.stack([np.asarray(c, np.float64).ravel() for c in counts])
    xx = x @ x.T
    xy = x @ y.T
    yy = np.einsum("bi,bi->b", y, y)
    yxx = np.stack([(x * yb) @ x.T for yb in y])
    return np.concatenate([xx.ravel(), xy.ravel(), yy, yxx.ravel()])


def amplitudes_of(coefficients: np.ndarray) -> np.ndarray:
    """``a = nbar (1, b1, b2/2, bs2)`` per bin from rows ``(nbar, b1[, b2, bs2])``."""
    c = np.atleast_2d(np.asarray(coefficients, np.float64))
    a = c[:, :1] * np.concatenate([np.ones((len(c), 1)), c[:, 1:]], axis=1)
    if c.shape[1] == 4:
        a[:, 2] *= 0.5
    return a


def solve_bias(
    moments: BiasMoments, order: int, *, mass_bins: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares coefficients, their covariance, and the residual over Poisson per bin.

    Parameters
    ----------
    moments : BiasMoments
    order : {1, 2}
    mass_bins : sequence of float, optional
        Bin edges in Msun/h, to name a bin in messages.

    Returns
    -------
    coefficients : (B, P) array
        ``nbar`` (mean count per cell), ``b1``, and for order 2 ``b2``, ``bs2``.
    covariance : (B, P, P) array
        Of the coefficients (Poisson sandwich, delta method).
    residual_over_poisson : (B,) array

    Raises
    ------
    MetadataError
        A bin without counts, or operators that do not determine the fit (e.g. a constant
        density).
    """
    names = coefficient_names(order)
    p = len(names)
    xx = moments.xx
    if xx.shape != (p, p):
        raise ConfigError(f"moments hold {xx.shape[0]} regressors, order {order} needs {p}")
    scale = np.sqrt(np.diag(xx))
    if not np.all(scale > 0) or np.linalg.cond(xx / np.outer(scale, scale)) > 1e12:
        raise MetadataError(
            "the density's bias operators do not determine a fit (constant or collinear over "
            "the training cells); fit on a density contrast with structure, or use order 1"
        )
    inv = np.linalg.inv(xx)
    nb = moments.xy.shape[1]
    coef = np.empty((nb, p))
    cov = np.empty((nb, p, p))
    for b in range(nb):
        a = inv @ moments.xy[:, b]
        if not a[0] > 0:
            where = (
                f"mass bin {b} ({mass_bins[b]:.3g}-{mass_bins[b + 1]:.3g} Msun/h)"
                if mass_bins is not None
                else f"mass bin {b}"
            )
            raise MetadataError(
                f"{where} holds no halos in the training counts; fit with populated mass bins "
                "(or a larger training box)"
            )
        cov_a = inv @ moments.yxx[b] @ inv
        jac = np.zeros((p, p))
        jac[0, 0] = 1.0
        scale_b = np.array([1.0, 2.0, 1.0])[: p - 1]  # b1 = a1/a0, b2 = 2 a2/a0, bs2 = a3/a0
        coef[b, 0] = a[0]
        coef[b, 1:] = scale_b * a[1:] / a[0]
        jac[1:, 0] = -scale_b * a[1:] / a[0] ** 2
        jac[1:, 1:] = np.diag(scale_b / a[0])
        cov[b] = jac @ cov_a @ jac.T
    resid = moments.residuals(amplitudes_of(coef)) / moments.xy[0]
    return coef, cov, resid


# ---------------------------------------------------------------- the model


def _floats(value: Any, depth: int) -> Any:
    if depth == 0:
        return float(value)
    return tuple(_floats(v, depth - 1) for v in value)


@dataclass(frozen=True)
class BiasModel:
    """A bias model fitted on training boxes: what ``bigpaint baseline`` fits and paints.

    Attributes
    ----------
    order : {1, 2}
        1: linear bias; 2: second-order local bias (see the module docstring).
    smoothing : float
        Gaussian radius ``R`` of ``delta_R`` in Mpc/h (0: none).
    mass_bins : tuple of float
        Mass-bin edges in Msun/h (``B + 1`` values).
    coefficients : tuple of tuples
        Per bin ``(nbar, b1)`` or ``(nbar, b1, b2, bs2)``; ``nbar`` is the mean count per cell,
        the biases are dimensionless.
    covariance : tuple of tuples of tuples
        Per bin, the covariance of its coefficients (Poisson sandwich; see module docstring).
    residual_over_poisson : tuple of float
        Per bin, mean squared residual over the mean count on the training cells.
    cell_size : float
        Cell side in Mpc/h of the training density; painting needs the same.
    redshift : float
        Redshift of the training fields.
    cosmology : dict or None
        The training density's cosmology (:class:`bigpaint.field.Cosmology` fields).
    input_kind : str
        Kind of the density Fields the model takes (``delta``).
    input_mass_assignment : dict or None
        Mass-assignment record of the training density (its window is part of the operators).
    target_mass_assignment : dict or None
        Record of the training counts (NGP for bigpaint's truth); painted Fields carry it.
    training : tuple of dict
        Per training box: ``density``, ``counts`` (paths), ``box_size`` (Mpc/h), ``grid``, and
        the Fields' finish times.
    n_cells : int
        Cells the fit used (all boxes).
    created, bigpaint_version : str
    """

    order: int
    smoothing: float
    mass_bins: tuple[float, ...]
    coefficients: tuple[tuple[float, ...], ...]
    covariance: tuple[tuple[tuple[float, ...], ...], ...]
    residual_over_poisson: tuple[float, ...]
    cell_size: float
    redshift: float
    cosmology: dict[str, float] | None
    input_kind: str
    input_mass_assignment: dict[str, Any] | None
    target_mass_assignment: dict[str, Any] | None
    training: tuple[dict[str, Any], ...]
    n_cells: int
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    )
    bigpaint_version: str = __version__
    format: str = FORMAT
    version: int = VERSION

    __pydantic_config__ = ConfigDict(extra="forbid")

    def __post_init__(self) -> None:
        # numbers as plain float tuples, so equal models have equal JSON (and hash)
        for name, depth in (("mass_bins", 1), ("coefficients", 2), ("covariance", 3),
                            ("residual_over_poisson", 1)):  # fmt: skip
            object.__setattr__(self, name, _floats(getattr(self, name), depth))
        for name in ("smoothing", "cell_size", "redshift"):
            object.__setattr__(self, name, float(getattr(self, name)))
        names = coefficient_names(self.order)
        nb = len(self.mass_bins) - 1
        edges = np.asarray(self.mass_bins, np.float64)
        problems = []
        if nb < 1 or not np.all(edges > 0) or np.any(np.diff(edges) <= 0):
            problems.append("mass_bins must be >= 2 positive increasing edges in Msun/h")
        if np.shape(self.coefficients) != (nb, len(names)):
            problems.append(f"coefficients must be {nb} rows of {names}")
        if np.shape(self.covariance) != (nb, len(names), len(names)):
            problems.append("covariance must hold one square matrix per mass bin")
        if len(self.residual_over_poisson) != nb:
            problems.append("residual_over_poisson needs one value per mass bin")
        if not (math.isfinite(self.smoothing) and self.smoothing >= 0):
            problems.append("smoothing must be >= 0 Mpc/h")
        if not (math.isfinite(self.cell_size) and self.cell_size > 0):
            problems.append("cell_size must be > 0 Mpc/h")
        if not np.all(np.isfinite(np.asarray(self.coefficients, np.float64))):
            problems.append("coefficients must be finite")
        if problems:
            raise BiasModelError(f"invalid bias model: {problems[0]}")

    # -------------------------------------------------------------- views

    @property
    def name(self) -> str:
        """``"linear bias"`` or ``"second-order local bias"``."""
        return MODEL_NAMES[self.order]

    @property
    def names(self) -> tuple[str, ...]:
        """Coefficient names, the columns of :attr:`coefficients`."""
        return coefficient_names(self.order)

    @property
    def n_bins(self) -> int:
        return len(self.mass_bins) - 1

    def values(self, name: str) -> np.ndarray:
        """One coefficient per mass bin (``"nbar"``, ``"b1"``, ``"b2"``, ``"bs2"``)."""
        return np.asarray(self.coefficients, np.float64)[:, self.names.index(name)]

    def errors(self, name: str) -> np.ndarray:
        """Standard error of one coefficient per mass bin."""
        i = self.names.index(name)
        return np.sqrt(np.asarray(self.covariance, np.float64)[:, i, i])

    @property
    def amplitudes(self) -> np.ndarray:
        """``(B, P)`` weights of ``(1, delta_R, O2, Os2)``: ``nbar (1, b1, b2/2, bs2)``."""
        return amplitudes_of(np.asarray(self.coefficients, np.float64))

    def summary(self) -> str:
        """A table of the coefficients with their errors, one line per mass bin."""
        head = f"{self.name} (order {self.order}), R = {self.smoothing:g} Mpc/h, "
        head += f"cells of {self.cell_size:g} Mpc/h, z = {self.redshift:g}, {self.n_cells} cells"
        lines = [head]
        for b in range(self.n_bins):
            parts = []
            for n in self.names:
                v, e = self.values(n)[b], self.errors(n)[b]
                parts.append(f"{n} {v:.4g} ± {e:.2g}")
            parts.append(f"residual/Poisson {self.residual_over_poisson[b]:.3g}")
            where = f"{self.mass_bins[b]:.3g}-{self.mass_bins[b + 1]:.3g} Msun/h"
            lines.append(f"  {where}: " + ", ".join(parts))
        return "\n".join(lines)

    # -------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping :meth:`save` writes (with a ``units`` note for readers)."""
        d = json.loads(json.dumps(asdict(self)))
        d["units"] = {"smoothing": "Mpc/h", "cell_size": "Mpc/h", "mass_bins": "Msun/h",
                      "nbar": "halos per cell"}  # fmt: skip
        return d

    def hash(self) -> str:
        """SHA-256 (24 hex digits) of the canonical JSON without the creation time: the
        model's identity in job tokens (a model fitted again to the same numbers is the same)."""
        body = {k: v for k, v in self.to_dict().items() if k != "created"}
        text = json.dumps(body, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON (atomically: a killed write leaves no half file)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
            os.replace(tmp, p)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return p

    @classmethod
    def from_dict(cls, data: Any, where: str = "bias model") -> BiasModel:
        """Validate a mapping (as :meth:`to_dict` writes) into a model, or one-line error."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BiasModelError(
                f"{where} is not a bias model (no 'format': '{FORMAT}'); give a file written "
                "by bigpaint baseline fit"
            )
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION:
            raise BiasModelError(
                f"{where} is a bias model of version {version!r}, this bigpaint reads up to "
                f"version {VERSION}; upgrade bigpaint or fit the model again"
            )
        body = {k: v for k, v in data.items() if k != "units"}
        try:
            return _ADAPTER.validate_python(body, strict=False)
        except ValidationError as exc:
            err = exc.errors()[0]
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, BigpaintError):  # from __post_init__: already one line
                raise BiasModelError(f"{where}: {inner}; fit the model again") from None
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise BiasModelError(
                f"{where} is a damaged bias model ({loc}: {err['msg']}); fit the model again"
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BiasModel:
        """Read a model written by :meth:`save` (never executes anything from the file).

        ``pretrained:NAME/BASELINE`` reads the baseline shipped with the pretrained painter
        ``NAME``, fitted on its training simulations (:func:`resolve_bias_model`).
        """
        p = resolve_bias_model(path)
        if not p.is_file():
            raise BiasModelError(
                f"no bias model at {p}: "
                + ("it is a directory" if p.exists() else "the file does not exist")
                + "; give the JSON file bigpaint baseline fit wrote"
            )
        try:
            data = json.loads(p.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BiasModelError(
                f"{p} is not a bias model: not JSON ({type(exc).__name__}); give the file "
                "bigpaint baseline fit wrote"
            ) from None
        return cls.from_dict(data, where=str(p))


_ADAPTER = TypeAdapter(BiasModel)

#: Where a pretrained painter keeps the baselines fitted on its training simulations.
BASELINES_DIR = "baselines"


def resolve_bias_model(spec: str | os.PathLike[str]) -> Path:
    """The file ``spec`` stands for: ``pretrained:NAME/BASELINE`` is the baseline
    ``BASELINE`` (``linear``, ``quadratic``) shipped in the pretrained painter ``NAME``'s
    ``baselines/`` folder; anything else is a path.

    Raises
    ------
    BiasModelError
        The painter ships no such baseline (one line listing those it ships).
    """
    from bigpaint.painters.pretrained import PREFIX, resolve_checkpoint

    text = str(spec)
    if not text.startswith(PREFIX):
        return Path(spec)
    name, sep, baseline = text[len(PREFIX) :].partition("/")
    if not sep or not baseline:
        raise BiasModelError(
            f"{text!r} names no baseline; give pretrained:PAINTER/BASELINE, e.g. "
            f"pretrained:{name or 'halo-painter-2mpc'}/linear"
        )
    folder = resolve_checkpoint(f"{PREFIX}{name}") / BASELINES_DIR
    path = folder / f"{baseline}.json"
    if not path.is_file():
        have = sorted(f.stem for f in folder.glob("*.json")) if folder.is_dir() else []
        raise BiasModelError(
            f"pretrained painter {name!r} ships no baseline {baseline!r}; it ships "
            f"{', '.join(have) or 'none'}"
        )
    return path
