"""``bigpaint evaluate`` refuses Fields that cannot be compared: one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bigpaint.field import write_array

from .conftest import BOX, refused

EDGES = [1e12, 1e13, 1e14, 1e15]
#: Counts in the workspace: 3 mass bins on the workspace's 16^3 grid of 64 Mpc/h.
SHAPE = (3, 16, 16, 16)


def counts(
    ws: Path,
    name: str,
    *,
    shape: tuple[int, ...] = SHAPE,
    box: float = BOX,
    kind: str = "halo_count",
    bins: list[float] | None = EDGES,
    window: str | None = "NGP",
    values: np.ndarray | None = None,
) -> str:
    """A halo-count Field in the workspace (Poisson counts unless ``values`` are given)."""
    a = np.random.default_rng(3).poisson(1.0, shape) if values is None else values
    prov = {} if bins is None else {"mass_bins": bins, "mass_units": "Msun/h"}
    meta = {"box_size": box, "kind": kind, "units": "halos", "redshift": 0.0,
            "provenance": prov, "mass_assignment": {"scheme": window}}  # fmt: skip
    write_array(str(ws / name), a.astype("f4"), chunks=8, meta=meta)
    return name


def _threads(ws: Path) -> str:
    (ws / "threads.yaml").write_text(
        "cluster: {kind: local, n_workers: 1, threads_per_worker: 1, processes: false}\n"
    )
    return "threads.yaml"


def evaluate(painted: str, truth: str, *more: str) -> list[str]:
    return ["evaluate", painted, truth, "--out", "out", "--kmax", "0.3", *more]


def test_fields_of_different_shape(ws):
    counts(ws, "t.zarr")
    counts(ws, "p.zarr", shape=(3, 8, 8, 8))
    refused(
        ws, evaluate("p.zarr", "t.zarr"), r"painted \(p\.zarr\) has grid \(8, 8, 8\), the truth"
    )


def test_fields_of_different_box(ws):
    counts(ws, "t.zarr")
    counts(ws, "p.zarr", box=2 * BOX)
    refused(ws, evaluate("p.zarr", "t.zarr"), r"has box \(128\.0, .*\) Mpc/h, the truth \(64\.0")


def test_fields_of_different_kind(ws):
    counts(ws, "t.zarr")
    counts(ws, "g.zarr", kind="galaxy_count")
    refused(ws, evaluate("g.zarr", "t.zarr"), r"'galaxy_count' Field, the truth 'halo_count'")
    refused(ws, evaluate("in.zarr", "t.zarr"), r"painted \(in\.zarr\) is a 'delta' Field")


def test_missing_or_different_mass_bins(ws):
    counts(ws, "t.zarr")
    counts(ws, "p.zarr", bins=None)
    refused(ws, evaluate("p.zarr", "t.zarr"), r"records no mass bins \(provenance\.mass_bins")
    counts(ws, "q.zarr", bins=[1e12, 1e13, 1e14, 1e16])
    refused(ws, evaluate("q.zarr", "t.zarr"), r"mass bins \[.*\] Msun/h, the truth")
    counts(ws, "two.zarr", bins=[1e12, 1e13, 1e14])
    refused(ws, evaluate("two.zarr", "t.zarr"), r"3 channel\(s\) but records 2 mass bin")


def test_truth_with_no_halos_in_a_bin(ws):
    empty = np.random.default_rng(4).poisson(1.0, SHAPE)
    empty[2] = 0
    counts(ws, "t.zarr", values=empty)
    counts(ws, "p.zarr")
    refused(
        ws,
        evaluate("p.zarr", "t.zarr", "--cluster", _threads(ws)),
        r"the truth has no halos in mass bin 2 \[1e\+14, 1e\+15\) Msun/h.*--exclude-bin 2",
        after_start=True,
    )


def test_truth_that_is_not_ngp_counts(ws):
    counts(ws, "p.zarr")
    counts(ws, "cic.zarr", window="CIC")
    refused(ws, evaluate("p.zarr", "cic.zarr"), r"mass assignment CIC; evaluate needs NGP")
    counts(ws, "frac.zarr", values=np.full(SHAPE, 0.5))
    refused(
        ws,
        evaluate("p.zarr", "frac.zarr", "--cluster", _threads(ws)),
        r"truth \(frac\.zarr\) holds values that are not non-negative integers",
        after_start=True,
    )


def test_baseline_of_another_shape(ws):
    counts(ws, "t.zarr")
    counts(ws, "p.zarr")
    counts(ws, "lin.zarr", shape=(3, 16, 16, 8))
    refused(
        ws,
        evaluate("p.zarr", "t.zarr", "--baseline", "linear=lin.zarr"),
        r"linear \(lin\.zarr\) has grid \(16, 16, 8\), the truth \(16, 16, 16\)",
    )


def test_bad_options(ws):
    counts(ws, "t.zarr")
    counts(ws, "p.zarr")
    refused(ws, evaluate("p.zarr", "t.zarr", "--baseline", "lin.zarr"), r"takes NAME=FIELD")
    refused(
        ws, evaluate("p.zarr", "t.zarr", "--baseline", "truth=p.zarr"), r"baseline name 'truth'"
    )
    refused(ws, evaluate("p.zarr", "t.zarr", "--exclude-bin", "5"), r"exclude_bins \[5\]")
    refused(ws, evaluate("p.zarr", "t.zarr", "--kmax", "2"), r"kmax 2 h/Mpc must lie between")
    refused(ws, evaluate("p.zarr", "t.zarr", "--threshold", "abundnce=1"), r"unknown threshold")
    (ws / "e.yaml").write_text("kmax: 0.3\nthresholds: {bispectrm: 0.2}\n")
    refused(ws, evaluate("p.zarr", "t.zarr", "--config", "e.yaml"), r"unknown key .*bispectrm")
    refused(ws, evaluate("p.zarr", "t.zarr", "--out", "p.zarr"), r"p\.zarr")


def test_matter_that_does_not_match_the_truth(ws):
    counts(ws, "t.zarr")
    counts(ws, "p.zarr")
    refused(
        ws,
        evaluate("p.zarr", "t.zarr", "--matter", "p.zarr"),
        r"matter \(p\.zarr\) is a 'halo_count' Field; give the simulation's matter density",
    )
    meta = {"box_size": BOX, "kind": "delta", "units": "1", "redshift": 0.0}
    write_array(str(ws / "m8.zarr"), np.zeros((8, 8, 8), "f4"), chunks=8, meta=meta)
    refused(
        ws,
        evaluate("p.zarr", "t.zarr", "--matter", "m8.zarr"),
        r"matter \(m8\.zarr\) has grid \(8, 8, 8\), the truth \(16, 16, 16\)",
    )
    meta["redshift"] = 1.0
    write_array(str(ws / "mz.zarr"), np.zeros((16,) * 3, "f4"), chunks=8, meta=meta)
    refused(
        ws,
        evaluate("p.zarr", "t.zarr", "--matter", "mz.zarr"),
        r"matter \(mz\.zarr\) is at redshift 1, the truth at 0\.0; give the matter at",
    )
    refused(ws, evaluate("p.zarr", "t.zarr", "--matter", "nope.zarr"), r"nope\.zarr")
