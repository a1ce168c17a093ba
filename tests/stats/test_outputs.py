"""Tables (CSV/netCDF with units), PNG figures, and the ``bigpaint stats`` commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.field import write_array
from bigpaint.mass_assignment import NO_WINDOW
from bigpaint.stats import (
    bispectrum,
    compare_spectra,
    dice,
    peak_counts,
    pixel_pdf,
    power_spectrum,
    read_table,
    subvolume_means,
    write_table,
)
from bigpaint.stats.plots import (
    plot_bispectrum,
    plot_comparison,
    plot_dice,
    plot_onepoint,
    plot_power,
)
from tests.stats.reference import gaussian_field
from tests.test_cli import _not_logged

BOX = 100.0
KF = 2 * math.pi / BOX


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("stats")
    truth = gaussian_field(16, BOX, lambda k: 500 * k**-1.2, seed=1)
    pred = 0.9 * truth + gaussian_field(16, BOX, lambda k: 30 + 0 * k, seed=2)
    out = {}
    for name, x in (("truth", truth), ("pred", pred)):
        url = str(root / f"{name}.zarr")
        write_array(
            url,
            x.astype("f4"),
            chunks=(6, 5, 7),
            meta={"box_size": BOX, "kind": "delta", "units": "1", "mass_assignment": NO_WINDOW},
        )
        out[name] = url
    other = str(root / "other.zarr")
    write_array(
        other,
        truth.astype("f4"),
        chunks=8,
        meta={"box_size": 2 * BOX, "kind": "delta", "units": "1", "mass_assignment": NO_WINDOW},
    )
    out["other"] = other
    cfg = root / "cluster.yaml"
    cfg.write_text(
        "cluster:\n  kind: local\n  n_workers: 1\n  threads_per_worker: 2\n  processes: false\n"
    )
    out["cluster"] = str(cfg)
    out["root"] = str(root)
    return out


def test_tables_round_trip_with_units(tmp_path, pair) -> None:
    ds = power_spectrum(pair["truth"])
    path = write_table(ds, tmp_path / "pk.csv")
    frame = pd.read_csv(path, comment="#")
    assert frame.columns[0] == "k" and {"P0", "n_modes"} <= set(frame.columns)
    header = path.read_text().splitlines()[1]
    assert json.loads(header.partition(": ")[2])["P0"] == "(Mpc/h)^3"
    named = np.genfromtxt(path, delimiter=",", names=True)
    np.testing.assert_allclose(named["P0"], ds.P0.values, rtol=1e-9)
    back = read_table(path)
    np.testing.assert_allclose(back.P0.values, ds.P0.values, rtol=1e-9)
    assert back.P0.attrs["units"] == "(Mpc/h)^3"
    assert back.attrs["grid"] == 16 and back.attrs["compensation"] == "sinc"
    nc = write_table(ds, tmp_path / "pk.nc")
    back_nc = read_table(nc)
    np.testing.assert_allclose(back_nc.P0.values, ds.P0.values)
    assert back_nc.k.attrs["units"] == "h/Mpc"
    assert back_nc.attrs["box_size"] == BOX
    with pytest.raises(Exception, match="must end in"):
        write_table(ds, tmp_path / "pk.txt")


def test_every_statistic_writes_csv_and_png(tmp_path, pair) -> None:
    cmp = compare_spectra(pair["pred"], pair["truth"])
    bk = bispectrum(pair["truth"], 2 * KF, 3 * KF, np.linspace(0.2, 3.0, 5))
    pdf = pixel_pdf(pair["truth"], 20)
    pk = peak_counts(pair["truth"], 10)
    means = subvolume_means(pair["truth"], 2)
    dc = dice(pair["truth"], pair["pred"], [0.1, 0.3], subvolumes=2)
    for name, ds in {
        "cmp": cmp,
        "bk": bk,
        "pdf": pdf,
        "peaks": pk,
        "means": means,
        "dice": dc,
    }.items():
        back = read_table(write_table(ds, tmp_path / f"{name}.csv"))
        for var in ds.data_vars:
            np.testing.assert_allclose(back[var].values, ds[var].values, rtol=1e-9, equal_nan=True)
    pngs = [
        plot_power(
            {"truth": power_spectrum(pair["truth"]), "pred": power_spectrum(pair["pred"])},
            tmp_path / "p.png",
            ratio_to="truth",
        ),
        plot_comparison(cmp, tmp_path / "c.png"),
        plot_bispectrum({"truth": bk, "again": bk}, tmp_path / "b.png", ratio_to="truth"),
        plot_onepoint(
            {"truth": pdf}, tmp_path / "o.png", peaks={"truth": pk}, means={"truth": means}
        ),
        plot_dice(dc, tmp_path / "d.png"),
    ]
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_power_with_reference(tmp_path, pair) -> None:
    out, png = tmp_path / "cmp.csv", tmp_path / "cmp.png"
    res = _run(
        "stats",
        "power",
        pair["pred"],
        pair["truth"],
        "--out",
        str(out),
        "--plot",
        str(png),
        "--cluster",
        pair["cluster"],
    )
    assert res.exit_code == 0, res.output
    got = read_table(out)
    want = compare_spectra(pair["pred"], pair["truth"])
    np.testing.assert_allclose(got.r_c.values, want.r_c.values, rtol=1e-8)
    assert png.stat().st_size > 5000
    res = _run(
        "stats",
        "power",
        pair["truth"],
        "--log",
        "--nbins",
        "5",
        "--multipoles",
        "0,2",
        "--cluster",
        pair["cluster"],
    )
    assert res.exit_code == 0 and "5 k bins" in res.output


def test_cli_bispectrum_and_onepoint(tmp_path, pair) -> None:
    out = tmp_path / "bk.csv"
    res = _run(
        "stats",
        "bispectrum",
        pair["pred"],
        pair["truth"],
        "--k1",
        str(2 * KF),
        "--k2",
        str(3 * KF),
        "--theta",
        "0.2:3.0:4",
        "--out",
        str(out),
        "--plot",
        str(tmp_path / "bk.png"),
        "--cluster",
        pair["cluster"],
    )
    assert res.exit_code == 0, res.output
    table = read_table(out)
    assert {"B", "Q", "B_b", "ratio"} <= set(table.data_vars) and table.sizes["theta"] == 4
    res = _run(
        "stats",
        "bispectrum",
        pair["truth"],
        "--equilateral",
        f"{2 * KF},{3 * KF}",
        "--cluster",
        pair["cluster"],
    )
    assert res.exit_code == 0, res.output
    res = _run(
        "stats",
        "onepoint",
        pair["pred"],
        pair["truth"],
        "--bins",
        "20",
        "--subvolumes",
        "2",
        "--top",
        "0.1,0.5",
        "--out",
        str(tmp_path / "one.csv"),
        "--plot",
        str(tmp_path / "one.png"),
        "--cluster",
        pair["cluster"],
    )
    assert res.exit_code == 0, res.output
    for name in ("pdf_a", "pdf_b", "peaks_a", "means_b", "dice"):
        assert (tmp_path / f"one_{name}.csv").exists(), name
    assert (tmp_path / "one_dice.png").exists() and (tmp_path / "one_onepoint.png").exists()
    dc = read_table(tmp_path / "one_dice.csv")
    np.testing.assert_allclose(
        dc.dice.values, dice(pair["truth"], pair["pred"], [0.1, 0.5], subvolumes=2).dice.values
    )


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (("power", "{pred}", "{other}"), r"different box sizes"),
        (("power", "{pred}", "--kmax", "5.0"), r"sqrt\(3\) k_Nyq"),
        (("power", "{pred}", "--mas", "SPH"), r"unknown mass-assignment scheme"),
        (("bispectrum", "{pred}", "--k1", "0.1"), r"needs --k1, --k2 and --theta"),
        (("bispectrum", "{pred}", "--equilateral", "a,b"), r"--equilateral must be"),
        (("onepoint", "{pred}", "{other}"), r"different box sizes"),
        (("power", "{root}/missing.zarr"), r"no Field at"),
    ],
)
def test_cli_bad_inputs_one_line(pair, args, pattern) -> None:
    import re

    argv = ["stats", *(a.format(**pair) for a in args), "--cluster", pair["cluster"]]
    res = _run(*argv)
    assert res.exit_code == 2, res.output
    lines = _not_logged(res.output)  # the dashboard link may come before the error
    assert len(lines) == 1 and lines[0].startswith("bigpaint: error: "), res.output
    assert re.search(pattern, lines[0]), lines[0]
