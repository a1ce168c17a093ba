"""Small painter configs and synthetic Fields for fast training tests; one torch thread per test."""

from __future__ import annotations

import pytest

from tests.painters._small import SMALL, _one_thread, small

__all__ = ["SMALL", "_one_thread", "small"]


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    """A 32^3 periodic pair: a smooth density and Poisson "halo counts" biased on it, plus a
    2-channel input, all as complete Fields (uneven chunks)."""
    import numpy as np
    import scipy.ndimage as ndi

    from bigpaint.field import write_array

    root = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(42)
    n = 32
    delta = ndi.gaussian_filter(rng.standard_normal((n, n, n)), 1.5, mode="wrap")
    delta = (delta / delta.std()).astype("f4")
    counts = rng.poisson(0.3 * np.exp(delta - 0.5)).astype("f4")
    meta = {"box_size": 64.0, "kind": "delta", "units": "1", "redshift": 0.0}
    out = {}
    for name, data, kind in [
        ("delta", delta, "delta"),
        ("counts", counts, "halo_count"),
        ("density", (1 + 0.5 * delta).clip(0.05, None), "density"),
        ("two", np.stack([delta, counts]), "delta"),
    ]:
        url = str(root / f"{name}.zarr")
        write_array(url, data, chunks=(12, 11, 10), meta={**meta, "kind": kind})
        out[name] = url
    out["array_delta"], out["array_counts"] = delta, counts
    return out
