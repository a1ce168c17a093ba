"""The settings of an evaluation: one typed spec for the library, the CLI and the pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bigpaint.stats.verdict import Thresholds

__all__ = ["DEFAULT_THETA", "EvaluateConfig"]

#: Default triangle angles (radians) of the bispectrum criterion.
DEFAULT_THETA = (0.2, 0.6, 1.0, 1.4, 1.8, 2.2, 2.6, 3.0)


class EvaluateConfig(BaseModel):
    """Settings of an evaluation (YAML keys of ``bigpaint evaluate --config``).

    Attributes
    ----------
    kmax : float
        Largest k of the verdict, h/Mpc.
    dk : float or None
        Width of the k bins from ``k_F`` to ``kmax`` in h/Mpc (default ``k_F``), rounded so
        that ``kmax`` is a bin edge.
    coarse_bins : int
        Logarithmic bins from ``kmax`` to ``k_Nyq`` (figures only).
    total_from : int
        First channel (mass bin) included in the total.
    exclude_bins : tuple of int
        Channels left out of everything (e.g. a bin with no true halos).
    noise : {"auto", "expectation", "poisson"}
        Whether the painting and baselines are expectations or Poisson draws; ``auto``
        decides per Field: non-negative integers are draws.
    k1, k2 : float
        Bispectrum triangle sides in h/Mpc.
    theta : tuple of float
        Angles between ``k1`` and ``k2`` in radians.
    shell_width : float or None
        Bispectrum shell width in h/Mpc (default ``k_F``).
    judge : {"total", "all"}
        Judge the spectra and bispectrum on the total only, or in every mass bin too.
    thresholds : Thresholds
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kmax: float = Field(0.2, gt=0)
    dk: float | None = Field(None, gt=0)
    coarse_bins: int = Field(6, ge=0)
    total_from: int = Field(0, ge=0)
    exclude_bins: tuple[int, ...] = ()
    noise: Literal["auto", "expectation", "poisson"] = "auto"
    k1: float = Field(0.1, gt=0)
    k2: float = Field(0.2, gt=0)
    theta: tuple[float, ...] = Field(DEFAULT_THETA, min_length=1)
    shell_width: float | None = Field(None, gt=0)
    judge: Literal["total", "all"] = "total"
    thresholds: Thresholds = Field(default_factory=Thresholds)
