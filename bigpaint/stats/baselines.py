"""Bias baselines: what a cosmologist would paint instead of a trained painter.

A painting is worth what it beats. The two baselines here take the same cheap density a
painter takes (bigpaint's 2LPT ``delta``) and predict halo counts per cell and mass bin:

* **linear bias**, ``N_b = nbar_b (1 + b1 delta_R)``;
* **second-order local bias**, ``N_b = nbar_b (1 + b1 delta_R + (b2/2) O2 + bs2 Os2)``,

with the operators of :mod:`bigpaint.stats.bias_operators` (``delta_R`` the density smoothed
by a Gaussian of ``R`` Mpc/h) and the coefficients fitted by least squares on one or more
training boxes (:mod:`bigpaint.stats.bias_model`). The three steps:

* :func:`fit_bias` opens (density, counts) pairs, checks that they agree (grid, box, cell
  size, redshift, cosmology, mass bins), and sums the fit's moments chunk by chunk: the
  operators come from the distributed FFT and every block is reduced where it lies.
* :func:`choose_smoothing` picks ``R`` from a short list by the least-squares error on a
  held-out box.
* :func:`paint_bias` writes the operators of a new density to a scratch Field (bigpaint
  owns and removes it), then combines them per block through
  :func:`bigpaint.chunked.apply.apply_blockwise` into a ``halo_count`` Field like the truth's:
  one channel per mass bin, ``provenance.mass_bins`` in Msun/h, the counts' NGP
  mass-assignment record. Its values are the **expected** counts (the model's mean, which
  the linear model lets go negative in voids), or with ``sample=True`` Poisson draws from
  that mean clipped at 0 and rescaled per bin to keep the box's mean count (clipping alone
  adds halos; :func:`clip_statistics` measures how many, in one chunked pass).

Inputs are checked by :mod:`bigpaint.stats.bias_inputs` before any work; Poisson draws
depend on the seed and the voxel alone (:mod:`bigpaint.stats.poisson_draws`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from bigpaint.errors import ConfigError, ShapeError
from bigpaint.mass_bins import MASS_UNITS
from bigpaint.stats.bias_inputs import (
    BaselineInputError,
    TrainingBox,
    check_density,
    open_training,
)
from bigpaint.stats.bias_model import BiasModel, BiasModelError, BiasMoments, moment_block
from bigpaint.stats.bias_operators import (
    bias_operators,
    check_smoothing,
    operator_names,
    write_bias_operators,
)
from bigpaint.stats.poisson_draws import TILE, poisson_quantile, sample_uniform

__all__ = [
    "DEFAULT_SMOOTHING",
    "SMOOTHING_CANDIDATES",
    "BaselineInputError",
    "SmoothingChoice",
    "bias_moments",
    "check_density",
    "choose_smoothing",
    "clip_statistics",
    "fit_bias",
    "open_training",
    "paint_bias",
]

#: Default Gaussian radius of ``delta_R`` in Mpc/h (docs/baselines.md: how it was chosen).
DEFAULT_SMOOTHING = 2.0
#: Radii :func:`choose_smoothing` tries by default, Mpc/h.
SMOOTHING_CANDIDATES: tuple[float, ...] = (0.0, 2.0, 4.0, 6.0)


# ---------------------------------------------------------------- fit


def _moments_reducer(*blocks: np.ndarray, loc: Any, n_ops: int) -> np.ndarray:
    from bigpaint.stats._reduce import check_finite_block

    for c in blocks[n_ops:]:
        check_finite_block(c, "bias fit: the counts")
        if c.dtype.kind in "if" and (c < 0).any():
            first = tuple(int(i) + a for i, (a, _) in zip(np.argwhere(c < 0)[0], loc, strict=True))
            raise BaselineInputError(
                f"bias fit: the counts hold negative values (first at voxel {first}); a "
                "halo_count Field counts halos per cell, >= 0"
            )
    return moment_block(*blocks, n_ops=n_ops)


def bias_moments(
    delta: Any,
    counts: Any,
    *,
    box_size: float | Sequence[float],
    smoothing: float,
    order: int = 2,
    backend: str = "slab",
) -> BiasMoments:
    """The least-squares moments of one box, chunk by chunk (nothing gathered).

    Parameters
    ----------
    delta : dask or numpy array, 3-D
        Density contrast.
    counts : dask or numpy array ``(B, n, n, n)`` or ``(n, n, n)``, or a list of 3-D arrays
        Halo counts per cell, one channel per mass bin.
    box_size : float or 3 floats
        Mpc/h.
    smoothing : float
        Gaussian radius in Mpc/h.
    order : {1, 2}
    backend : str
        FFT backend.

    Returns
    -------
    BiasMoments
        Add the moments of several boxes with ``+`` for a joint fit.
    """
    import dask.array as da

    from bigpaint.stats._reduce import blockwise_sum

    names = operator_names(order)
    if isinstance(counts, (list, tuple)):
        channels = [c if isinstance(c, da.Array) else da.asarray(c) for c in counts]
    else:
        arr = counts if isinstance(counts, da.Array) else da.asarray(np.asarray(counts))
        channels = [arr[b] for b in range(arr.shape[0])] if arr.ndim == 4 else [arr]
    spatial = channels[0].chunks
    ops, _ = bias_operators(
        delta, box_size=box_size, smoothing=smoothing, order=order, chunks=spatial,
        backend=backend,
    )  # fmt: skip
    if any(tuple(c.shape) != tuple(ops[0].shape) for c in channels):
        raise ShapeError(
            f"counts of shape {tuple(channels[0].shape)} do not match the density's grid "
            f"{tuple(ops[0].shape)}"
        )
    p, b = len(names) + 1, len(channels)
    size = p * p + p * b + b + b * p * p
    flat = blockwise_sum(_moments_reducer, [*ops, *channels], (size,), np.float64,
                         n_ops=len(names))  # fmt: skip
    return BiasMoments.from_flat(flat, p, b)


def _box_moments(box: TrainingBox, smoothing: float, order: int, backend: str) -> BiasMoments:
    from bigpaint.field import data_var

    return bias_moments(
        data_var(box.density_ds).data, data_var(box.counts_ds).data, box_size=box.box_size,
        smoothing=smoothing, order=order, backend=backend,
    )  # fmt: skip


def fit_bias(
    pairs: Sequence[tuple[Any, Any]],
    *,
    order: int = 2,
    smoothing: float = DEFAULT_SMOOTHING,
    backend: str = "slab",
) -> BiasModel:
    """Fit a linear (order 1) or second-order local (order 2) bias model to halo counts.

    Parameters
    ----------
    pairs : sequence of (density, counts)
        Training boxes: Field paths (or opened Fields) of a ``delta`` density and its
        ``halo_count`` counts; several boxes are fitted jointly (one set of coefficients).
    order : {1, 2}
    smoothing : float
        Gaussian radius ``R`` of ``delta_R`` in Mpc/h (0: none); see :func:`choose_smoothing`.
    backend : str
        FFT backend.

    Returns
    -------
    BiasModel
        Per mass bin ``nbar`` (mean count per cell), ``b1`` (and ``b2``, ``bs2``) with
        standard errors from the Poisson least-squares covariance.
    """
    from bigpaint.stats.bias_model import solve_bias

    operator_names(order)
    boxes = open_training(pairs)
    first = boxes[0]
    r = check_smoothing(smoothing, min((b.box_size for b in boxes), key=min))
    moments = functools.reduce(
        lambda a, b: a + b, (_box_moments(b, r, order, backend) for b in boxes)
    )
    coef, cov, resid = solve_bias(moments, order, mass_bins=first.mass_bins)
    return BiasModel(
        order=order,
        smoothing=r,
        mass_bins=first.mass_bins,
        coefficients=coef,  # type: ignore[arg-type]  # array: BiasModel makes it tuples
        covariance=cov,  # type: ignore[arg-type]  # array: BiasModel makes it tuples
        residual_over_poisson=resid,  # type: ignore[arg-type]  # array: BiasModel makes it a tuple
        cell_size=first.cell_size,
        redshift=first.redshift,
        cosmology=first.cosmology,
        input_kind="delta",
        input_mass_assignment=first.input_mass_assignment,
        target_mass_assignment=first.target_mass_assignment,
        training=tuple(
            {
                "density": b.density,
                "counts": b.counts,
                "box_size": list(b.box_size),
                "grid": list(b.shape),
                "density_finished": b.density_ds.attrs.get("bigpaint_finished"),
                "counts_finished": b.counts_ds.attrs.get("bigpaint_finished"),
            }
            for b in boxes
        ),
        n_cells=moments.n_cells,
    )


@dataclass(frozen=True)
class SmoothingChoice:
    """What :func:`choose_smoothing` measured.

    Attributes
    ----------
    best : float
        The radius (Mpc/h) with the lowest score.
    radii : tuple of float
        The radii tried, Mpc/h.
    scores : tuple of float
        Per radius: the held-out mean squared residual over the held-out mean count,
        averaged over mass bins (1 is Poisson scatter about the model; lower is better).
    per_bin : tuple of tuples
        Per radius, that ratio per mass bin.
    """

    best: float
    radii: tuple[float, ...]
    scores: tuple[float, ...]
    per_bin: tuple[tuple[float, ...], ...]

    def table(self) -> str:
        lines = ["R [Mpc/h]  score  per mass bin"]
        for r, s, row in zip(self.radii, self.scores, self.per_bin, strict=True):
            mark = "  <- best" if r == self.best else ""
            lines.append(f"{r:9g}  {s:.4f}  " + " ".join(f"{v:.4f}" for v in row) + mark)
        return "\n".join(lines)


def choose_smoothing(
    train: Sequence[tuple[Any, Any]],
    heldout: Sequence[tuple[Any, Any]],
    *,
    order: int = 2,
    radii: Sequence[float] = SMOOTHING_CANDIDATES,
    backend: str = "slab",
) -> SmoothingChoice:
    """Pick the smoothing radius by least-squares error on held-out boxes.

    For each radius the model is fitted on ``train`` and its residuals are summed on
    ``heldout`` (from the same chunked moments, with the held-out box's own operators). The
    score of a radius is the held-out ``sum (N - model)^2 / sum N`` per mass bin, averaged
    over the bins, so each bin weighs alike whatever its abundance.

    Parameters
    ----------
    train, heldout : sequence of (density, counts)
        As :func:`fit_bias`; the held-out boxes must agree with the training ones.
    order : {1, 2}
    radii : sequence of float
        Candidate radii in Mpc/h.

    Returns
    -------
    SmoothingChoice
    """
    from bigpaint.stats.bias_model import amplitudes_of, solve_bias

    operator_names(order)
    if not radii:
        raise ConfigError("choose_smoothing: give at least one radius")
    train_boxes = open_training(train, "choose smoothing")
    held_boxes = open_training([*train, *heldout], "choose smoothing")[len(train) :]
    if not held_boxes:
        raise ConfigError("choose smoothing: give at least one held-out (density, counts) pair")
    smallest = min((b.box_size for b in train_boxes + held_boxes), key=min)
    rs = tuple(check_smoothing(r, smallest) for r in radii)
    scores, per_bin = [], []
    for r in rs:
        fit = functools.reduce(
            lambda a, b: a + b, (_box_moments(b, r, order, backend) for b in train_boxes)
        )
        coef, _, _ = solve_bias(fit, order, mass_bins=train_boxes[0].mass_bins)
        held = functools.reduce(
            lambda a, b: a + b, (_box_moments(b, r, order, backend) for b in held_boxes)
        )
        ratio = held.residuals(amplitudes_of(coef)) / np.maximum(held.xy[0], 1e-300)
        per_bin.append(tuple(float(v) for v in ratio))
        scores.append(float(np.mean(ratio)))
    best = rs[int(np.argmin(scores))]
    return SmoothingChoice(best, rs, tuple(scores), tuple(per_bin))


# ---------------------------------------------------------------- paint


def _expectation(ops: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """``a_0 + sum_k a_k O_k`` per bin: (B, ...) from operators (C, ...), float64."""
    ops = ops.astype(np.float64)
    const = amplitudes[:, 0].reshape((-1,) + (1,) * (ops.ndim - 1))
    return const + np.einsum("bk,k...->b...", amplitudes[:, 1:], ops)


def _clip_sums(*ops: np.ndarray, loc: Any, amplitudes: np.ndarray) -> np.ndarray:
    lam = _expectation(np.stack(ops), amplitudes).reshape(len(amplitudes), -1)
    return np.stack([lam.sum(1), np.clip(lam, 0.0, None).sum(1), (lam < 0).sum(1)])


def clip_statistics(operators: Any, amplitudes: np.ndarray) -> dict[str, list[float]]:
    """Where a model's expectation is negative, and what clipping it at 0 does, per bin.

    Parameters
    ----------
    operators : xarray.Dataset
        An operators Field (:func:`bigpaint.stats.bias_operators.write_bias_operators`).
    amplitudes : (B, P) array
        :attr:`BiasModel.amplitudes`.

    Returns
    -------
    dict
        ``negative_fraction`` (of cells), and ``clip_rescale``: the factor that brings the
        mean of the clipped expectation back to the mean of the expectation.
    """
    from bigpaint.field import data_var
    from bigpaint.stats._reduce import blockwise_sum

    var = data_var(operators).data
    sums = blockwise_sum(
        _clip_sums, [var[c] for c in range(var.shape[0])], (3, len(amplitudes)), np.float64,
        amplitudes=np.asarray(amplitudes, np.float64),
    )  # fmt: skip
    total, clipped, negative = sums
    cells = float(np.prod(var.shape[1:]))
    rescale = np.where(clipped > 0, np.maximum(total, 0.0) / np.where(clipped > 0, clipped, 1), 1)
    return {
        "negative_fraction": [float(v) for v in negative / cells],
        "clip_rescale": [float(v) for v in rescale],
    }


def _combine_block(
    window: np.ndarray,
    *,
    amplitudes: np.ndarray,
    rescale: np.ndarray | None,
    seed: int,
    block_info: Any = None,
) -> np.ndarray:
    lam = _expectation(window, amplitudes)
    if rescale is None:
        return lam.astype(np.float32)
    out = np.empty(lam.shape, np.float32)
    for b in range(lam.shape[0]):
        u = sample_uniform(block_info.shape, block_info.core, seed=seed, channel=b)
        out[b] = poisson_quantile(u, np.clip(lam[b], 0.0, None) * rescale[b])
    return out


def _annotate(url: str, extra: dict[str, Any]) -> None:
    """Add ``extra`` to a Field's provenance (what is only known once the operators are)."""
    import zarr

    g = zarr.open_group(store=url, mode="r+")
    # zarr types attributes as any JSON value; a Field's provenance is a JSON object
    old = cast("Mapping[str, Any]", g.attrs.get("provenance") or {})
    g.attrs["provenance"] = {**dict(old), **extra}


def _model_of(model: BiasModel | str | os.PathLike[str]) -> tuple[BiasModel, str | None]:
    if isinstance(model, BiasModel):
        return model, None
    if isinstance(model, (str, os.PathLike)):
        return BiasModel.load(model), str(model)
    raise BiasModelError(f"expected a BiasModel or the path of its JSON file, got {model!r}")


def paint_bias(
    model: BiasModel | str | os.PathLike[str],
    density: str,
    output: str,
    *,
    sample: bool = False,
    seed: int = 0,
    chunks: int | Sequence[int] | None = None,
    overwrite: bool = False,
    backend: str = "slab",
    scratch_dir: str | None = None,
    progress: bool = False,
) -> Any:
    """Paint halo counts per mass bin from a density with a bias model: the baseline.

    Parameters
    ----------
    model : BiasModel or path
        From :func:`fit_bias` (or its JSON file).
    density : str
        Path of a Field the model covers (:func:`check_density`: same kind and cell size,
        redshift, cosmology and mass assignment); its box may differ from the training box.
    output : str
        Path of the new ``halo_count`` Field, ``(B, n, n, n)`` float32 in halos per cell, one
        channel per mass bin.
    sample : bool
        False (default): the **expected** count per cell, ``nbar (1 + b1 delta_R + ...)``,
        unclipped: the linear model goes negative where ``b1 delta_R < -1`` and that is
        kept, so the box mean is the model's (``nbar`` for a contrast of mean zero). True: a
        Poisson draw per cell from the expectation clipped at 0 and rescaled per mass bin to
        the expectation's box mean (integers stored as float32). Clipping alone would add
        halos: at 2 Mpc/h cells a linear model is negative in about half the cells, and
        clipping raised the mean count of a heavy bin 2.2-fold (docs/baselines.md). The
        output's provenance records ``negative_fraction`` and, when sampling,
        ``clip_rescale`` per bin.
    seed : int
        Seed of the Poisson draws; with the voxel the only thing they depend on.
    chunks : int or 3 ints, optional
        Write blocks (default: the density's).
    overwrite : bool
        Replace an existing output; without it an unfinished run of the same job is resumed.
    backend : str
        FFT backend of the operators.
    scratch_dir : str, optional
        Where the operators' scratch Field goes (default: next to ``output``); removed at the
        end.
    progress : bool

    Returns
    -------
    FieldWriter
    """
    from bigpaint.field import create_field, job_token, open_field, zarr_array
    from bigpaint.outputs import check_apart, job_path, remove_owned, writing

    bias, model_path = _model_of(model)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    inputs = {"density": density, "model": model_path}
    check_apart({"output": output}, inputs)
    src = open_field(density)
    check_density(bias, src)
    shape = tuple(int(n) for n in zarr_array(src).shape)
    out_chunks = chunks if chunks is not None else tuple(zarr_array(src).chunks[-3:])
    config = {
        "model": bias.name, "order": bias.order, "smoothing": bias.smoothing,
        "sample": bool(sample), "seed": int(seed), "tile": TILE, "chunks": out_chunks,
    }  # fmt: skip
    job = job_token(
        operation="paint_bias", model_hash=bias.hash(), density=job_path(density),
        density_finished=src.attrs.get("bigpaint_finished"), backend=backend, **config,
    )  # fmt: skip
    scratch = _scratch(output, scratch_dir, job)
    check_apart({"output": output, "scratch directory": scratch}, inputs)
    meta = _output_meta(bias, src, density, model_path, config)
    with writing({"output": output}, inputs):
        writer = create_field(
            output, shape=(bias.n_bins, *shape), chunks=out_chunks, meta=meta, dtype="float32",
            job=job, overwrite=overwrite,
        )  # fmt: skip
        if writer.pending():
            _paint_blocks(bias, density, output, writer, scratch, sample=sample, seed=int(seed),
                          backend=backend, progress=progress)  # fmt: skip
        writer.finalize()
        remove_owned(scratch)
    return writer


def _scratch(output: str, scratch_dir: str | None, job: str) -> str:
    """Where the operators' scratch Field of job ``job`` goes: ``scratch_dir``, else a hidden
    folder next to ``output``."""
    if scratch_dir is not None:
        return os.path.join(scratch_dir, f"baseline-{job[:12]}")
    absout = os.path.abspath(output)
    return os.path.join(os.path.dirname(absout), f".{os.path.basename(absout)}.baseline-{job[:12]}")


def _output_meta(
    bias: BiasModel, src: Any, density: str, model_path: str | None, config: dict[str, Any]
) -> dict[str, Any]:
    """The metadata of the painted halo-count Field, its provenance included."""
    return {
        "box_size": src.attrs["box_size"],
        "kind": "halo_count",
        "units": "halos",
        "redshift": bias.redshift,
        "cosmology": src.attrs.get("cosmology") or bias.cosmology,
        "provenance": {
            "operation": "paint_bias",
            "inputs": [str(density)],
            "model": model_path,
            "model_hash": bias.hash(),
            "config": config,
            "values": "Poisson draws from the clipped, rescaled expectation"
            if config["sample"]
            else "expected counts (unclipped)",
            "mass_bins": list(bias.mass_bins),
            "mass_units": MASS_UNITS,
            "training": [dict(t) for t in bias.training],
        },
        "mass_assignment": bias.target_mass_assignment,
    }


def _paint_blocks(
    bias: BiasModel,
    density: str,
    output: str,
    writer: Any,
    scratch: str,
    *,
    sample: bool,
    seed: int,
    backend: str,
    progress: bool,
) -> None:
    """Write the bias operators of ``density`` to ``scratch``, record their clip statistics
    in ``output`` and combine them block by block into the blocks its ``writer`` still
    needs."""
    from bigpaint.chunked.apply import apply_blockwise
    from bigpaint.field import open_field
    from bigpaint.outputs import owned_dir, remove_owned

    owned_dir(scratch, purpose="bias-operator scratch Fields")
    ops_url = os.path.join(scratch, "operators.zarr")
    try:
        write_bias_operators(
            density, ops_url, smoothing=bias.smoothing, order=bias.order,
            chunks=writer.chunks, backend=backend, progress=progress,
        )  # fmt: skip
    except Exception:  # nothing worth resuming: leave no scratch behind
        remove_owned(scratch)
        raise
    ops = open_field(ops_url)
    clip = clip_statistics(ops, bias.amplitudes)
    _annotate(output, clip if sample else {"negative_fraction": clip["negative_fraction"]})
    block = functools.partial(
        _combine_block, amplitudes=bias.amplitudes, seed=seed,
        rescale=np.asarray(clip["clip_rescale"]) if sample else None,
    )  # fmt: skip
    apply_blockwise(block, ops, writer, 0, progress=progress, name="baseline")
