"""The mass-assignment record: every producer writes it, ``mas auto`` compensates with it.

The CLI is driven end to end (``bigpaint deposit`` then ``bigpaint stats power`` with no
flags); the library producers (lpt, simulate, paint, smooth) are checked for the record they
write and for what ``auto`` then does with their Fields.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from bigpaint.cli import cli
from bigpaint.errors import ConfigError, MetadataError
from bigpaint.field import FieldMeta, MassAssignment, field_meta, open_field, write_array
from bigpaint.mass_assignment import NO_WINDOW, mass_assignment_of
from bigpaint.stats import bispectrum_equilateral, compare_spectra, power_spectrum
from bigpaint.stats.tables import read_table

BOX = 100.0
GRID = 16
SCHEMES = ("NGP", "CIC", "TSC", "PCS")


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def ok(*args: str):
    res = run(*args)
    assert res.exit_code == 0, res.output
    return res


def one_line_error(res, pattern: str) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("bigpaint: error: ") and re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """Clustered particles (Gaussian blobs, so P(k) has structure) and an in-process cluster."""
    root = tmp_path_factory.mktemp("mas")
    rng = np.random.default_rng(7)
    centres = rng.uniform(0, BOX, (60, 3))
    pos = centres[rng.integers(0, 60, 6000)] + rng.normal(0, 4.0, (6000, 3))
    pos = np.concatenate([pos % BOX, rng.uniform(0, BOX, (3000, 3))]).astype("f4")
    np.save(root / "p.npy", pos)
    cfg = root / "cluster.yaml"
    cfg.write_text(
        "cluster:\n  kind: local\n  n_workers: 1\n  threads_per_worker: 2\n  processes: false\n"
    )
    return {"root": str(root), "particles": str(root / "p.npy"), "cluster": str(cfg)}


def deposit(env, out: Path, scheme: str, interlace: bool) -> str:
    ok("deposit", env["particles"], out, "--grid", GRID, "--chunks", 8, "--scheme",
       scheme.lower(), *(["--interlace"] if interlace else []), "--box-size", BOX,
       "--cluster", env["cluster"], "--workers", 1)  # fmt: skip
    return str(out)


def power(env, *args) -> object:
    table = Path(env["root"]) / f"power-{abs(hash(args))}.csv"
    ok("stats", "power", *args, "--out", table, "--cluster", env["cluster"], "--workers", 1)
    return read_table(table)


# ---------------------------------------------------------------- deposit -> stats power


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_auto_compensates_a_deposit_with_its_own_scheme(env, tmp_path, scheme, interlace):
    url = deposit(env, tmp_path / "d.zarr", scheme, interlace)
    rec = field_meta(open_field(url)).mass_assignment
    assert rec == MassAssignment(scheme=scheme, interlaced=interlace)

    auto = power(env, url)
    given = power(env, url, "--mas", scheme)
    raw = power(env, url, "--mas", "none")
    np.testing.assert_allclose(auto["P0"].values, given["P0"].values, rtol=1e-6)
    assert auto.attrs["mas"] == given.attrs["mas"] == scheme
    assert auto.attrs["interlaced"] == given.attrs["interlaced"] == str(interlace)
    assert auto.attrs["mas_source"] == "Field record" and given.attrs["mas_source"] == "given"
    # the window really was divided out: it suppresses power most at the highest k
    ratio = auto["P0"].values / raw["P0"].values
    assert np.all(ratio > 1) and ratio[-1] > ratio[len(ratio) // 2] > ratio[0]
    assert raw.attrs["mas"] == "None"


def test_cross_spectra_and_bispectrum_read_each_record(env, tmp_path):
    cic = deposit(env, tmp_path / "cic.zarr", "CIC", False)
    pcs = deposit(env, tmp_path / "pcs.zarr", "PCS", True)
    auto = power(env, pcs, cic)
    given = power(env, pcs, cic, "--mas", "PCS", "--mas-b", "CIC")
    for name in ("P_pred", "P_true", "P_cross", "T", "r_c"):
        np.testing.assert_allclose(auto[name].values, given[name].values, rtol=1e-6)
    assert auto.attrs["mas"] == "PCS, CIC" and auto.attrs["interlaced"] == "True, False"
    # an interlaced field has lost the odd aliases Jing's sum would divide out
    with pytest.raises(ConfigError, match=r"interlaced.*compensation 'sinc'"):
        compare_spectra(pcs, cic, compensation="aliased")

    b_auto = bispectrum_equilateral(pcs, [0.2, 0.3], method="distributed")
    b_given = bispectrum_equilateral(pcs, [0.2, 0.3], mas="PCS", method="distributed")
    np.testing.assert_allclose(b_auto["B"].values, b_given["B"].values, rtol=1e-6)
    assert b_auto.attrs["mas"] == "PCS" and b_auto.attrs["interlaced"] == "True"
    b_raw = bispectrum_equilateral(pcs, [0.2, 0.3], mas=None, method="distributed")
    assert not np.allclose(b_auto["B"].values, b_raw["B"].values, rtol=1e-2)


# ---------------------------------------------------------------- Fields without a record


def test_auto_refuses_a_deposit_kind_without_a_record(env, tmp_path):
    rho = 1 + 0.1 * np.random.default_rng(0).standard_normal((GRID,) * 3)
    url = str(tmp_path / "rho.zarr")
    write_array(url, rho, chunks=8, meta={"box_size": BOX, "kind": "density", "units": "1"})
    line = one_line_error(
        run("stats", "power", url, "--cluster", env["cluster"], "--workers", 1),
        r"'density' Field with no mass-assignment record.*--mas/--mas-b.*NGP, CIC, TSC, PCS or none",
    )
    assert url in line
    one_line_error(
        run("stats", "bispectrum", url, "--equilateral", "0.2", "--cluster", env["cluster"],
            "--workers", 1),
        r"no mass-assignment record",
    )  # fmt: skip
    # the fix the message names works
    assert power(env, url, "--mas", "none").attrs["mas_source"] == "given"
    # a kind that cannot carry a window gets no compensation, and says why
    dist = str(tmp_path / "dist.zarr")
    write_array(dist, rho, chunks=8, meta={"box_size": BOX, "kind": "distance", "units": "1"})
    ds = power_spectrum(dist, multipoles=(0,))
    assert ds.attrs["mas"] == "None" and "no assignment window" in ds.attrs["mas_source"]


def test_older_provenance_spellings_are_read(tmp_path):
    rho = 1 + 0.1 * np.random.default_rng(1).standard_normal((GRID,) * 3)
    old = {
        "simulate": ({"operation": "simulate", "mas": "NGP"}, MassAssignment(scheme="NGP")),
        "deposit": (
            {"operation": "deposit", "config": {"scheme": "tsc", "interlace": True}},
            MassAssignment(scheme="TSC", interlaced=True),
        ),
        "lpt": (
            {"operation": "lpt", "deposit_operation": "deposit", "config": {"scheme": "pcs"}},
            MassAssignment(scheme="PCS"),
        ),
        "ics": ({"operation": "gaussian_field"}, NO_WINDOW),
    }
    for name, (prov, want) in old.items():
        url = str(tmp_path / f"{name}.zarr")
        meta = {"box_size": BOX, "kind": "delta", "units": "1", "provenance": prov}
        write_array(url, rho - 1, chunks=8, meta=meta)
        assert mass_assignment_of(field_meta(open_field(url))) == want, name
        ds = power_spectrum(url, multipoles=(0,))
        assert ds.attrs["mas"] == str(want.scheme) and ds.attrs["interlaced"] == str(
            want.interlaced
        )
    bad = str(tmp_path / "bad.zarr")
    write_array(
        bad, rho, chunks=8, meta={"box_size": BOX, "kind": "density", "units": "1",
                                  "provenance": {"mas": "SPH"}},
    )  # fmt: skip
    with pytest.raises(MetadataError, match=r"bad.zarr: mass-assignment record .* is invalid"):
        power_spectrum(bad)


def test_the_record_is_validated():
    assert MassAssignment(scheme="cic") == MassAssignment(scheme="CIC", interlaced=False)
    assert MassAssignment(scheme="none") == NO_WINDOW
    with pytest.raises(ValueError, match="interlaced Field is a deposit"):
        MassAssignment(scheme=None, interlaced=True)
    with pytest.raises(ValueError):
        MassAssignment(scheme="SPH")


# ---------------------------------------------------------------- other producers


def test_lpt_records_its_deposit_and_its_linear_field_none(tmp_path):
    from bigpaint.ics.lpt import lpt_density
    from bigpaint.ics.power import linear_power

    res = lpt_density(
        str(tmp_path / "z.zarr"), grid=16, box_size=BOX, seed=3, power=linear_power(), tile=16,
        chunks=8, scheme="tsc", linear_output=str(tmp_path / "lin.zarr"),
    )  # fmt: skip
    assert field_meta(res.density.open()).mass_assignment == MassAssignment(scheme="TSC")
    assert field_meta(res.linear.open()).mass_assignment == NO_WINDOW  # type: ignore[union-attr]
    ds = power_spectrum(res.density.url, multipoles=(0,))
    assert ds.attrs["mas"] == "TSC" and ds.attrs["mas_source"] == "Field record"
    assert power_spectrum(res.linear.url, multipoles=(0,)).attrs["mas"] == "None"  # type: ignore[union-attr]


def test_simulate_records_cic_densities_and_ngp_halo_counts(tmp_path):
    from bigpaint.sim.simulate import simulate
    from bigpaint.stats.report import power_report
    from bigpaint.stats.spec import select_channel

    cfg = {
        "output": str(tmp_path / "run"), "particles": 16, "box_size": 64.0, "tile": 16,
        "steps": 2, "device": "cpu", "fof": {"min_members": 5},
        "halo_counts": {"grid": 8, "mass_bins": [1e11, 1e16]}, "chunks": 8,
        "protohalo": {"min_particles": 5}, "save_particles": False,
    }  # fmt: skip
    simulate(cfg)
    want = {
        "density.zarr": "CIC",
        "density_ic.zarr": "CIC",
        "lpt_density.zarr": "CIC",
        "halo_counts.zarr": "NGP",
        "protohalo_labels.zarr": None,
        "protohalo_distance.zarr": None,
    }
    for name, scheme in want.items():
        meta = field_meta(open_field(f"{cfg['output']}/{name}"))
        assert meta.mass_assignment == MassAssignment(scheme=scheme), name
        assert "mas" not in meta.provenance, name  # one record, not two
    # the pipeline's channel sum keeps the record: auto compensates NGP on painted-vs-truth
    counts = select_channel(f"{cfg['output']}/halo_counts.zarr", "sum", "power")
    ds = power_report(counts, multipoles=(0,))
    assert ds.attrs["mas"] == "NGP" and ds.attrs["mas_source"] == "Field record"


def test_smooth_keeps_the_record_even_an_old_spelling(tmp_path):
    from bigpaint.filters import smooth

    rho = 1 + 0.1 * np.random.default_rng(2).standard_normal((GRID,) * 3)
    for name, extra, want in (
        ("new", {"mass_assignment": {"scheme": "TSC", "interlaced": True}},
         MassAssignment(scheme="TSC", interlaced=True)),
        ("old", {"provenance": {"operation": "deposit", "config": {"scheme": "cic"}}},
         MassAssignment(scheme="CIC")),
        ("none", {}, None),
    ):  # fmt: skip
        src = str(tmp_path / f"{name}.zarr")
        write_array(src, rho, chunks=8, meta={"box_size": BOX, "kind": "density", "units": "1",
                                              **extra})  # fmt: skip
        out = smooth(src, str(tmp_path / f"{name}-s.zarr"), 5.0)
        assert field_meta(out.open()).mass_assignment == want, name


def _checkpoint(path: Path, target: dict) -> str:
    from bigpaint.painters import save_checkpoint
    from tests.painters._small import small

    prov = {
        "inputs": [{"url": "in.zarr", "kind": "delta", "units": "1", "box_size": [64.0] * 3}],
        "targets": [{"url": "out.zarr", "kind": "halo_count", "units": "halos", **target}],
        "grid": [16] * 3,
    }
    return str(save_checkpoint(small("halo-painter"), path, provenance=prov))


def test_paint_carries_the_window_of_the_training_target(tmp_path):
    from bigpaint.paint import paint_field
    from bigpaint.paint.plan import plan_paint

    src = str(tmp_path / "in.zarr")
    delta = np.random.default_rng(3).standard_normal((16,) * 3).astype("f4")
    write_array(src, delta, chunks=8, meta={"box_size": 64.0, "kind": "delta", "units": "1",
                                            "mass_assignment": {"scheme": "CIC"}})  # fmt: skip
    ngp = _checkpoint(tmp_path / "ngp.painter", {"mass_assignment": {"scheme": "NGP"}})
    out = str(tmp_path / "painted.zarr")
    paint_field(ngp, src, out, device="cpu")
    meta = field_meta(open_field(out))
    assert meta.kind == "halo_count" and meta.mass_assignment == MassAssignment(scheme="NGP")
    assert meta.provenance["mass_assignment_from"] == "training target"
    assert power_spectrum(out, multipoles=(0,)).attrs["mas"] == "NGP"

    # a checkpoint of an older bigpaint: the target's provenance spelling is read
    old = _checkpoint(tmp_path / "old.painter", {"provenance": {"mas": "NGP"}})
    plan = plan_paint(old, open_field(src))
    assert plan.out_meta["mass_assignment"] == {"scheme": "NGP", "interlaced": False}
    # no record of the target's window: the painted counts have none, and auto refuses them
    unknown = _checkpoint(tmp_path / "unknown.painter", {})
    plan = plan_paint(unknown, open_field(src))
    assert plan.out_meta["mass_assignment"] is None
    assert plan.out_meta["provenance"]["mass_assignment_from"] == "not recorded by the checkpoint"


def test_training_records_each_targets_window():
    from bigpaint.train.loop import _provenance

    meta = FieldMeta(box_size=64.0, kind="halo_count", units="1", mass_assignment={"scheme": "NGP"})
    data = SimpleNamespace(
        input_meta=[meta.model_copy(update={"mass_assignment": None})],
        target_meta=[meta],
        shape=(16, 16, 16),
        validation=SimpleNamespace(origin=(0, 0, 0), size=8),
        more_meta=[],
    )
    cfg = SimpleNamespace(
        model_dump=lambda mode: {},
        data=SimpleNamespace(inputs=["in.zarr"], targets=["out.zarr"], more_boxes=[]),
    )
    prov = _provenance(cfg, data, {})  # type: ignore[arg-type]
    assert prov["targets"][0]["mass_assignment"] == {"scheme": "NGP", "interlaced": False}
    assert prov["inputs"][0]["mass_assignment"] is None
