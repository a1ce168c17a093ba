"""Against the real Pylians3 (``Pk_library``), when it is installed (optional).

The conventions of :mod:`bigpaint.stats.power` and :mod:`bigpaint.stats.bispectrum` are meant
to reproduce Pylians'; this checks it directly: Pk (P0, P2, P4, k, N_modes), XPk and Bk (with
Pylians' shell width 2 k_F) agree to float32 rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

PKL = pytest.importorskip("Pk_library")

from bigpaint.stats.bispectrum import bispectrum  # noqa: E402
from bigpaint.stats.power import compare_spectra, power_spectrum  # noqa: E402

N, BOX = 32, 250.0


@pytest.fixture(scope="module")
def fields() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((N, N, N)).astype(np.float32)
    b = (a + 0.5 * rng.standard_normal((N, N, N))).astype(np.float32)
    return a, b


@pytest.mark.parametrize(("mas", "axis"), [("CIC", 0), ("TSC", 2), ("None", 1), ("NGP", 0)])
def test_pk_matches_pylians(fields, mas, axis) -> None:
    a, _ = fields
    ref = PKL.Pk(a, BOX, axis, mas, 1, verbose=False)
    ds = power_spectrum(a, box_size=BOX, mas=None if mas == "None" else mas, los=axis)
    np.testing.assert_array_equal(ds.n_modes.values, ref.Nmodes3D.astype(np.int64))
    np.testing.assert_allclose(ds.k.values, ref.k3D, rtol=1e-12)
    for j, var in enumerate(("P0", "P2", "P4")):
        scale = np.abs(ref.Pk[:, j]).max()
        np.testing.assert_allclose(ds[var].values, ref.Pk[:, j], rtol=0, atol=1e-6 * scale)


def test_xpk_matches_pylians(fields) -> None:
    a, b = fields
    ref = PKL.XPk([a, b], BOX, 0, ["CIC", "CIC"], 1)
    ds = compare_spectra(a, b, box_size=BOX, mas="CIC", mas_true="CIC")
    np.testing.assert_allclose(ds.P_cross.values, ref.XPk[:, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(ds.P_pred.values, ref.Pk[:, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(ds.P_true.values, ref.Pk[:, 0, 1], rtol=1e-5)


def test_bk_matches_pylians_with_its_shell_width(fields) -> None:
    a, _ = fields
    kf = 2 * math.pi / BOX
    theta = np.linspace(0.1, 3.0, 5)
    ref = PKL.Bk(a, BOX, 3 * kf, 4 * kf, theta, "CIC", 1)
    for method in ("crop", "distributed"):
        ds = bispectrum(
            a, 3 * kf, 4 * kf, theta, box_size=BOX, mas="CIC", shell_width=2 * kf, method=method
        )
        np.testing.assert_allclose(ds.B.values, ref.B, rtol=1e-5)
        np.testing.assert_allclose(ds.Q.values, ref.Q, rtol=1e-5)
        np.testing.assert_allclose(ds.P3.values, ref.Pk[2:], rtol=1e-5)
