"""Bias baselines: operators against numpy, the fit against a known bias, painting, the file.

The references here are written independently of the library: whole-array ``numpy.fft``
with ``fftfreq`` wave vectors for the operators, ``numpy.random.poisson`` for synthetic
counts and ``scipy.stats.poisson.ppf`` for the inverse CDF.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from bigpaint.cli import cli
from bigpaint.field import data_var, open_field, write_array
from bigpaint.stats.baselines import (
    DEFAULT_SMOOTHING,
    bias_moments,
    choose_smoothing,
    fit_bias,
    paint_bias,
)
from bigpaint.stats.bias_model import (
    VERSION,
    BiasModel,
    BiasModelError,
    amplitudes_of,
    solve_bias,
)
from bigpaint.stats.bias_operators import bias_operators, write_bias_operators
from bigpaint.stats.poisson_draws import poisson_quantile, sample_uniform
from bigpaint.testing import chunk_layouts, regular_chunks

BINS = [1e12, 1e13, 1e14]
DELTA_META = {
    "box_size": 64.0,
    "kind": "delta",
    "units": "1",
    "redshift": 0.5,
    "mass_assignment": {"scheme": "CIC"},
}
COUNT_META = {
    **DELTA_META,
    "kind": "halo_count",
    "units": "halos",
    "provenance": {"mass_bins": BINS, "mass_units": "Msun/h"},
    "mass_assignment": {"scheme": "NGP"},
}
TRUE = np.array([[1.0, 1.5, 0.8, -0.4], [0.25, 2.2, 1.5, -0.6]])  # nbar, b1, b2, bs2 per bin


# ---------------------------------------------------------------- whole-array references


def _k(shape, box):
    nx, ny, nz = shape
    kf = 2 * np.pi / box
    m = (
        np.fft.fftfreq(nx, 1 / nx)[:, None, None],
        np.fft.fftfreq(ny, 1 / ny)[None, :, None],
        np.fft.rfftfreq(nz, 1 / nz)[None, None, :],
    )
    return m, tuple(kf * mi for mi in m)


def reference_operators(delta, box, smoothing):
    """delta_R, O2, Os2 of a whole array with numpy.fft (off-diagonal s_ij zero on Nyquist)."""
    shape = delta.shape
    m, k = _k(shape, box)
    k2 = k[0] ** 2 + k[1] ** 2 + k[2] ** 2
    fk = np.fft.rfftn(delta) * np.exp(-0.5 * k2 * smoothing**2)
    d = np.fft.irfftn(fk, s=shape, axes=(0, 1, 2))
    s2 = np.zeros(shape)
    for i in range(3):
        for j in range(3):
            with np.errstate(invalid="ignore", divide="ignore"):
                mult = np.where(k2 > 0, k[i] * k[j] / k2 - (i == j) / 3, 0.0)
            if i != j:
                nyq = [(np.abs(m[a]) == n / 2) & (n % 2 == 0) for a, n in enumerate(shape)]
                mult = np.where(nyq[i] | nyq[j], 0.0, mult)
            s2 += np.fft.irfftn(fk * mult, s=shape, axes=(0, 1, 2)) ** 2
    return np.stack([d, d * d - np.mean(d * d), s2 - np.mean(s2)])


def gaussian_delta(n, seed, sigma=0.1, box=64.0):
    """A smooth Gaussian contrast with rms ``sigma`` (white noise times a k-space Gaussian)."""
    rng = np.random.default_rng(seed)
    _, k = _k((n, n, n), box)
    k2 = k[0] ** 2 + k[1] ** 2 + k[2] ** 2
    white = np.fft.rfftn(rng.standard_normal((n,) * 3))
    d = np.fft.irfftn(white * np.exp(-2.0 * k2), s=(n,) * 3, axes=(0, 1, 2))
    return d * (sigma / d.std())


def expected_counts(ops, coefficients):
    a = amplitudes_of(np.asarray(coefficients))
    return a[:, 0, None, None, None] + np.einsum("bk,kxyz->bxyz", a[:, 1 : len(ops) + 1], ops)


def _rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def _box(tmp_path: Path, name: str, n: int = 16, seed: int = 0, coefficients=TRUE):
    """A density Field and Poisson counts drawn from the second-order model on it."""
    delta = gaussian_delta(n, seed, box=DELTA_META["box_size"])
    lam = expected_counts(reference_operators(delta, DELTA_META["box_size"], 0.0), coefficients)
    counts = np.random.default_rng(seed + 1000).poisson(np.clip(lam, 0, None)).astype("f4")
    d_url, c_url = str(tmp_path / f"{name}_delta.zarr"), str(tmp_path / f"{name}_counts.zarr")
    write_array(d_url, delta.astype("f4"), chunks=(6, 5, 7), meta=DELTA_META)
    write_array(c_url, counts, chunks=5, meta=COUNT_META)
    return d_url, c_url


# ---------------------------------------------------------------- operators


@settings(max_examples=15, deadline=None)
@given(
    shape=st.tuples(*(st.sampled_from([5, 6, 8, 9]),) * 3),
    smoothing=st.sampled_from([0.0, 1.5, 6.0]),
    box=st.floats(20.0, 100.0),
    data=st.data(),
)
def test_operators_equal_numpy_for_any_chunking(shape, smoothing, box, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    delta = rng.standard_normal(shape)
    in_chunks = data.draw(chunk_layouts(shape, max_parts=3))
    out_chunks = data.draw(chunk_layouts(shape, max_parts=3))
    ops, means = bias_operators(
        da.from_array(delta, chunks=in_chunks), box_size=box, smoothing=smoothing,
        chunks=out_chunks,
    )  # fmt: skip
    ref = reference_operators(delta, box, smoothing)
    for got, want in zip(ops, ref, strict=True):
        assert got.chunks == out_chunks
        assert _rel(got.compute(scheduler="sync"), want) < 1e-10
    d = ref[0]
    assert math.isclose(means["delta_R2"], np.mean(d * d), rel_tol=1e-10)


def test_operators_move_with_the_field_across_the_seam():
    delta = gaussian_delta(12, 3, sigma=1.0)
    shift = (5, -7, 11)
    ops, _ = bias_operators(delta, box_size=64.0, smoothing=2.0, chunks=(5, 4, 7))
    rolled, _ = bias_operators(np.roll(delta, shift, axis=(0, 1, 2)), box_size=64.0,
                               smoothing=2.0, chunks=(5, 4, 7))  # fmt: skip
    for a, b in zip(ops, rolled, strict=True):
        assert _rel(b.compute(), np.roll(a.compute(), shift, axis=(0, 1, 2))) < 1e-12


def test_linear_operators_only_for_order_one():
    ops, _ = bias_operators(np.zeros((4, 4, 4)) + 1.0, box_size=10.0, smoothing=0.0, order=1)
    assert len(ops) == 1
    assert np.allclose(ops[0].compute(), 1.0)


def test_operator_field_equals_numpy_with_its_means(tmp_path):
    delta = gaussian_delta(10, 4, sigma=0.5, box=64.0)
    write_array(str(tmp_path / "d.zarr"), delta.astype("f4"), chunks=(4, 3, 10), meta=DELTA_META)
    w = write_bias_operators(str(tmp_path / "d.zarr"), str(tmp_path / "ops.zarr"),
                             smoothing=3.0, chunks=(3, 7, 4))  # fmt: skip
    ds = open_field(w.url)
    ref = reference_operators(delta.astype("f4").astype("f8"), 64.0, 3.0)
    assert _rel(data_var(ds).values, ref) < 1e-6
    cfg = ds.attrs["provenance"]["config"]
    assert cfg["channels"] == ["delta_R", "O2", "Os2"]
    assert math.isclose(cfg["means"]["delta_R2"], np.mean(ref[0] ** 2), rel_tol=1e-6)


# ---------------------------------------------------------------- fit


def _fit_synthetic(seed, n=48, order=2, truth=TRUE):
    delta = gaussian_delta(n, seed)
    ops = reference_operators(delta, 64.0, 0.0)
    lam = expected_counts(ops[: 1 if order == 1 else 3], truth[:, : 2 if order == 1 else 4])
    assert lam.min() > 0, "the synthetic expectation must stay positive (no clipping)"
    counts = np.random.default_rng(seed + 50).poisson(lam).astype("f4")
    mom = bias_moments(
        da.from_array(delta, chunks=(16, 24, 48)), da.from_array(counts, chunks=(2, 12, 48, 16)),
        box_size=64.0, smoothing=0.0, order=order,
    )  # fmt: skip
    coef, cov, _ = solve_bias(mom, order)
    return coef, np.sqrt(np.einsum("bii->bi", cov))


def test_fit_recovers_a_known_bias_and_its_errors_match_the_scatter():
    pulls = []
    for seed in range(8):
        coef, err = _fit_synthetic(seed)
        pulls.append((coef - TRUE) / err)
    pulls = np.array(pulls)  # (seeds, bins, coefficients)
    assert np.all(np.abs(pulls[0]) < 3), pulls[0]  # each coefficient within 3 sigma
    # stated errors agree with the scatter over seeds: pulls have unit variance
    assert 0.7 < pulls.std() < 1.35, pulls.std()
    assert abs(pulls.mean()) < 0.35


def test_linear_fit_recovers_b1():
    truth = TRUE.copy()
    truth[:, 2:] = 0.0
    coef, err = _fit_synthetic(11, n=32, order=1, truth=truth)
    assert coef.shape == (2, 2)
    assert np.all(np.abs(coef - truth[:, :2]) < 3 * err)


def test_moments_do_not_depend_on_chunking():
    delta = gaussian_delta(12, 5)
    counts = np.random.default_rng(1).poisson(1.0, (2, 12, 12, 12)).astype("f4")
    a = bias_moments(delta, counts, box_size=64.0, smoothing=2.0)
    b = bias_moments(da.from_array(delta, chunks=5), da.from_array(counts, chunks=(1, 7, 5, 3)),
                     box_size=64.0, smoothing=2.0)  # fmt: skip
    for x, y in ((a.xx, b.xx), (a.xy, b.xy), (a.yy, b.yy), (a.yxx, b.yxx)):
        assert np.allclose(x, y, rtol=1e-12, atol=1e-9)


def test_joint_fit_adds_the_boxes(tmp_path):
    p1, p2 = _box(tmp_path, "a", seed=1), _box(tmp_path, "b", seed=2)
    joint = fit_bias([p1, p2], order=2, smoothing=0.0)
    m1 = bias_moments(data_var(open_field(p1[0])).data, data_var(open_field(p1[1])).data,
                      box_size=64.0, smoothing=0.0)  # fmt: skip
    m2 = bias_moments(data_var(open_field(p2[0])).data, data_var(open_field(p2[1])).data,
                      box_size=64.0, smoothing=0.0)  # fmt: skip
    coef, cov, _ = solve_bias(m1 + m2, 2)
    assert np.allclose(joint.coefficients, coef, rtol=1e-12)
    assert np.allclose(joint.covariance, cov, rtol=1e-10)
    once, once_cov, _ = solve_bias(m1, 2)
    twice, twice_cov, _ = solve_bias(m1 + m1, 2)  # the same box twice: same fit, half the variance
    assert np.allclose(twice, once, rtol=1e-10)
    assert np.allclose(twice_cov, once_cov / 2, rtol=1e-10)
    assert joint.n_cells == 2 * 16**3 and [t["density"] for t in joint.training] == [p1[0], p2[0]]


def test_choose_smoothing_prefers_the_radius_the_counts_were_drawn_at(tmp_path):
    # counts drawn from delta smoothed at 6 Mpc/h: the held-out error is lowest there
    out = []
    for name, seed in (("train", 1), ("held", 2)):
        delta = gaussian_delta(24, seed, sigma=0.4)
        ops = reference_operators(delta, 64.0, 6.0)
        lam = 2.0 * (1.0 + 0.3 * ops[0] / ops[0].std())
        counts = np.random.default_rng(seed).poisson(lam)[None].astype("f4")
        d, c = str(tmp_path / f"{name}_d.zarr"), str(tmp_path / f"{name}_c.zarr")
        write_array(d, delta.astype("f4"), chunks=12, meta=DELTA_META)
        write_array(
            c, counts, chunks=12, meta={**COUNT_META, "provenance": {"mass_bins": BINS[:2]}}
        )
        out.append((d, c))
    choice = choose_smoothing([out[0]], [out[1]], order=1, radii=(0.0, 2.0, 6.0, 12.0))
    assert choice.best == 6.0
    assert min(choice.scores) == choice.scores[2] and "<- best" in choice.table()


# ---------------------------------------------------------------- paint


def _model(order=2, coefficients=TRUE, smoothing=0.0, cell=4.0):
    names = 2 if order == 1 else 4
    return BiasModel(
        order=order, smoothing=smoothing, mass_bins=tuple(BINS),
        coefficients=coefficients[:, :names], covariance=np.zeros((2, names, names)),
        residual_over_poisson=(1.0, 1.0), cell_size=cell, redshift=0.5, cosmology=None,
        input_kind="delta", input_mass_assignment={"scheme": "CIC", "interlaced": False},
        target_mass_assignment={"scheme": "NGP", "interlaced": False},
        training=({"density": "train.zarr"},), n_cells=1,
    )  # fmt: skip


@settings(max_examples=4, deadline=None)
@given(chunks=regular_chunks((16, 16, 16), min_size=5))
def test_paint_equals_the_whole_array_for_any_chunking(tmp_path_factory, chunks):
    tmp = tmp_path_factory.mktemp("paint")
    delta = gaussian_delta(16, 6, sigma=0.5)
    write_array(str(tmp / "d.zarr"), delta.astype("f4"), chunks=(6, 5, 7), meta=DELTA_META)
    model = _model(smoothing=3.0)
    w = paint_bias(model, str(tmp / "d.zarr"), str(tmp / "p.zarr"), chunks=chunks)
    got = data_var(open_field(w.url)).values
    want = expected_counts(reference_operators(delta.astype("f4").astype("f8"), 64.0, 3.0),
                           model.coefficients)  # fmt: skip
    assert got.dtype == np.float32 and got.shape == (2, 16, 16, 16)
    assert _rel(got, want) < 1e-5
    assert (got < 0).any(), "the expected counts are kept unclipped where the model is < 0"
    assert not any(p.name.startswith(".p.zarr.baseline") for p in tmp.iterdir())


def test_painted_field_records_what_the_truth_records(tmp_path):
    d, _ = _box(tmp_path, "a")
    _model().save(tmp_path / "m.json")
    ds = open_field(paint_bias(str(tmp_path / "m.json"), d, str(tmp_path / "p.zarr")).url)
    a = ds.attrs
    assert (a["kind"], a["units"], a["redshift"]) == ("halo_count", "halos", 0.5)
    assert a["mass_assignment"] == {"scheme": "NGP", "interlaced": False}
    prov = a["provenance"]
    assert prov["mass_bins"] == BINS and prov["mass_units"] == "Msun/h"
    assert prov["model"] == str(tmp_path / "m.json") and prov["model_hash"] == _model().hash()
    assert prov["values"].startswith("expected counts")


def test_poisson_draws_do_not_depend_on_chunks_and_follow_the_expectation(tmp_path):
    delta = gaussian_delta(32, 7, sigma=0.3)
    write_array(str(tmp_path / "d.zarr"), delta.astype("f4"), chunks=16, meta=DELTA_META)
    model = _model(order=1, cell=2.0)
    kw = {"sample": True, "seed": 9}
    a = paint_bias(model, str(tmp_path / "d.zarr"), str(tmp_path / "a.zarr"), chunks=32, **kw)
    b = paint_bias(model, str(tmp_path / "d.zarr"), str(tmp_path / "b.zarr"), chunks=(7, 13, 9),
                   **kw)  # fmt: skip
    c = paint_bias(model, str(tmp_path / "d.zarr"), str(tmp_path / "c.zarr"), sample=True, seed=10)
    e = paint_bias(model, str(tmp_path / "d.zarr"), str(tmp_path / "e.zarr"))
    xa, xb = data_var(a.open()).values, data_var(b.open()).values
    assert np.array_equal(xa, xb)
    assert not np.array_equal(xa, data_var(c.open()).values)
    assert np.all(xa == np.round(xa)) and xa.min() >= 0
    expected = data_var(e.open()).values.astype("f8")
    prov = a.open().attrs["provenance"]
    negative = (expected < 0).mean(axis=(1, 2, 3))
    assert np.allclose(prov["negative_fraction"], negative) and negative.min() > 0
    assert e.open().attrs["provenance"]["negative_fraction"] == prov["negative_fraction"]
    clipped = np.clip(expected, 0, None)
    rescale = expected.sum(axis=(1, 2, 3)) / clipped.sum(axis=(1, 2, 3))
    assert np.allclose(prov["clip_rescale"], rescale, rtol=1e-6) and np.all(rescale < 1)
    for b_ in range(2):  # the mean is the expectation's, the scatter Poisson about it
        lam = clipped[b_] * rescale[b_]
        assert abs(xa[b_].sum() - expected[b_].sum()) < 4 * math.sqrt(expected[b_].sum())
        live = lam > 0
        chi2 = np.mean((xa[b_][live] - lam[live]) ** 2 / lam[live])
        assert abs(chi2 - 1) < 0.05, chi2


def test_poisson_quantile_is_the_inverse_cdf():
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.random(15000) * 5, rng.random(4000) * 80, [0, -1, np.nan, 1e-9]])
    u = rng.random(lam.size)
    want = np.maximum(sps.poisson.ppf(u, np.nan_to_num(np.clip(lam, 0, None))), 0)
    assert np.array_equal(poisson_quantile(u, lam), want)


def test_uniforms_depend_on_the_voxel_alone():
    shape = (40, 40, 40)
    whole = sample_uniform(shape, (slice(0, 40),) * 3, seed=3, channel=1)
    part = sample_uniform(shape, (slice(7, 33), slice(30, 40), slice(0, 5)), seed=3, channel=1)
    assert np.array_equal(part, whole[7:33, 30:40, 0:5])
    other = sample_uniform(shape, (slice(0, 40),) * 3, seed=3, channel=0)
    assert not np.array_equal(whole, other)
    assert 0 <= whole.min() and whole.max() < 1 and abs(whole.mean() - 0.5) < 0.01


def test_repainting_resumes_and_another_seed_is_another_job(tmp_path):
    from bigpaint.errors import FieldExistsError

    d, _ = _box(tmp_path, "a")
    first = paint_bias(_model(), d, str(tmp_path / "p.zarr"), sample=True, seed=1)
    again = paint_bias(_model(), d, str(tmp_path / "p.zarr"), sample=True, seed=1)
    assert np.array_equal(data_var(first.open()).values, data_var(again.open()).values)
    with pytest.raises(FieldExistsError, match="already exists"):
        paint_bias(_model(), d, str(tmp_path / "p.zarr"), sample=True, seed=2)


# ---------------------------------------------------------------- the model file


def test_model_json_round_trip_and_refusals(tmp_path):
    model = fit_bias([_box(tmp_path, "a")], order=2, smoothing=2.0)
    path = model.save(tmp_path / "m.json")
    text = path.read_text()
    loaded = BiasModel.load(path)
    assert loaded == model and loaded.hash() == model.hash()
    data = json.loads(text)
    assert data["format"] == "bigpaint-bias-model" and data["version"] == VERSION
    assert data["units"]["mass_bins"] == "Msun/h" and data["smoothing"] == 2.0
    cases = {
        "newer.json": {**data, "version": VERSION + 1},
        "other.json": {"format": "something-else"},
        "damaged.json": {**data, "coefficients": [[1.0, 2.0]]},
        "extra.json": {**data, "surprise": 1},
        "types.json": {**data, "order": "two"},
    }
    for name, body in cases.items():
        (tmp_path / name).write_text(json.dumps(body))
    (tmp_path / "binary.json").write_bytes(b"\x80\x04\x95pickle")
    for name, pattern in (
        ("newer.json", "version 2, this bigpaint reads up to version 1"),
        ("other.json", "is not a bias model"),
        ("damaged.json", "coefficients must be 2 rows"),
        ("extra.json", "surprise"),
        ("types.json", "order"),
        ("binary.json", "not JSON"),
        ("missing.json", "does not exist"),
    ):
        with pytest.raises(BiasModelError, match=pattern) as info:
            BiasModel.load(tmp_path / name)
        assert "\n" not in str(info.value)


def test_model_views_and_summary():
    m = _model()
    assert m.name == "second-order local bias" and m.names == ("nbar", "b1", "b2", "bs2")
    assert np.allclose(m.values("b2"), TRUE[:, 2])
    assert np.allclose(m.amplitudes[:, 2], TRUE[:, 0] * TRUE[:, 2] / 2)
    assert "1e+12-1e+13 Msun/h" in m.summary()


# ---------------------------------------------------------------- CLI and pipeline


def _cluster_file(tmp_path: Path) -> str:
    path = tmp_path / "cluster.yaml"
    path.write_text("cluster:\n  kind: local\n  n_workers: 1\n  processes: false\n")
    return str(path)


def test_cli_fits_then_paints(tmp_path):
    p1, p2 = _box(tmp_path, "a", seed=1), _box(tmp_path, "b", seed=2)
    model, out = str(tmp_path / "m.json"), str(tmp_path / "p.zarr")
    cluster = ["--cluster", _cluster_file(tmp_path)]
    run = CliRunner().invoke(
        cli, ["baseline", "fit", *p1, model, "--also", *p2, "--order", "1", *cluster],
        catch_exceptions=False,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "linear bias" in run.output and "b1" in run.output
    fitted = BiasModel.load(model)
    assert fitted.hash() == fit_bias([p1, p2], order=1, smoothing=DEFAULT_SMOOTHING).hash()
    run = CliRunner().invoke(
        cli, ["baseline", "paint", model, p2[0], out, "--sample", "--seed", "4", "--chunks", "6",
              *cluster],
        catch_exceptions=False,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    want = paint_bias(model, p2[0], str(tmp_path / "lib.zarr"), sample=True, seed=4)
    assert np.array_equal(data_var(open_field(out)).values, data_var(want.open()).values)
    run = CliRunner().invoke(
        cli, ["baseline", "choose-smoothing", *p1, *p2, "--order", "1", "--radii", "3",
              *cluster],
        catch_exceptions=False,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "best R = " in run.output


def test_cli_default_radius_is_the_library_default():
    from bigpaint.cli.baseline import fit

    (opt,) = [p for p in fit.params if p.name == "smoothing"]
    assert opt.default == DEFAULT_SMOOTHING


def test_pipeline_stage_fits_and_paints(tmp_path):
    from bigpaint.config import parse_config
    from bigpaint.pipeline import PipelineConfig, plan_pipeline
    from bigpaint.pipeline.runner import run_pipeline

    p1, p2 = _box(tmp_path, "a", seed=1), _box(tmp_path, "b", seed=2)
    params = {"training_density": [p1[0]], "training_counts": [p1[1]], "density": p2[0],
              "order": 1, "chunks": 8}  # fmt: skip
    data = {"out": str(tmp_path / "run"), "stages": [
        {"name": "base", "kind": "baseline", "params": params}]}  # fmt: skip
    cfg = parse_config(PipelineConfig, data, "test")
    (planned,) = plan_pipeline(cfg, source="test")
    assert planned.outputs == ("model.json", "painted.zarr")
    (record,) = run_pipeline(cfg, source="test", use_current_client=True)
    stage = tmp_path / "run" / "base"
    model = BiasModel.load(stage / "model.json")
    assert np.allclose(model.coefficients, fit_bias([p1], order=1).coefficients)
    painted = open_field(str(stage / "painted.zarr"))
    assert painted.attrs["provenance"]["model"] == str(stage / "model.json")
    assert record["summary"]["b1[0]"] == pytest.approx(model.values("b1")[0])
    bad = {**params, "training_counts": [p1[1], p2[1]]}
    with pytest.raises(Exception, match="one counts Field per density"):
        plan_pipeline(
            parse_config(PipelineConfig, {**data, "stages": [{**data["stages"][0],
                         "params": bad}]}, "test"),
            source="test",
        )  # fmt: skip


def test_pretrained_baselines_load_by_name_and_paint_in_a_pipeline(tmp_path, monkeypatch):
    """A pretrained painter ships the baselines fitted on its training boxes:
    ``pretrained:NAME/linear`` loads one, a pipeline stage paints it (``from_model``), and
    an unknown baseline is one line listing those shipped."""
    from bigpaint.config import parse_config
    from bigpaint.pipeline import PipelineConfig, plan_pipeline
    from bigpaint.pipeline.runner import run_pipeline
    from bigpaint.stats.bias_model import BiasModelError

    from ..painters._cards import collection

    root = collection(tmp_path / "collection", "tiny-halo")
    p1, p2 = _box(tmp_path, "a", seed=1), _box(tmp_path, "b", seed=2)
    fitted = fit_bias([p1], order=1)
    fitted.save(root / "tiny-halo.painter" / "baselines" / "linear.json")
    monkeypatch.setenv("BIGPAINT_PRETRAINED_PATH", str(root))
    loaded = BiasModel.load("pretrained:tiny-halo/linear")
    np.testing.assert_array_equal(loaded.coefficients, fitted.coefficients)
    with pytest.raises(BiasModelError, match="ships no baseline 'cubic'; it ships linear"):
        BiasModel.load("pretrained:tiny-halo/cubic")
    with pytest.raises(BiasModelError, match="names no baseline"):
        BiasModel.load("pretrained:tiny-halo")
    stage = {
        "name": "base",
        "kind": "baseline",
        "params": {"from_model": "pretrained:tiny-halo/linear", "density": p2[0]},
    }
    cfg = parse_config(PipelineConfig, {"out": str(tmp_path / "run"), "stages": [stage]}, "t")
    run_pipeline(cfg, source="t", use_current_client=True)
    out = tmp_path / "run" / "base"
    assert BiasModel.load(out / "model.json").coefficients == fitted.coefficients
    direct = paint_bias(fitted, p2[0], str(tmp_path / "direct.zarr"))
    np.testing.assert_array_equal(
        open_field(str(out / "painted.zarr"))["halo_count"].values,
        open_field(direct.url)["halo_count"].values,
    )
    both = {**stage["params"], "training_density": [p1[0]], "training_counts": [p1[1]]}
    bad = parse_config(PipelineConfig, {"out": "x", "stages": [{**stage, "params": both}]}, "t")
    with pytest.raises(Exception, match="not both"):
        plan_pipeline(bad, source="t")
