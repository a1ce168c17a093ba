"""The report page: the verdict first, a reading paragraph, slices in Mpc/h, every stage after.

A synthetic halo box stands in for a run: a Gaussian field ``g`` is the "2LPT density",
halo expectations ``n_c exp(b_c g - ...)`` the painting, a Poisson draw of them the truth,
and linear and second-order bias models of a noisier ``g`` the baselines. Their metadata
carry the provenance bigpaint's ``lpt``, ``simulate``, ``paint`` and ``baseline`` write, so
the page's description of what was compared is generated as in a real run. ``evaluate``
on 16^3 cells takes a second or two; the report is written from stage records like the
runner's.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer

import bigpaint.stats.plots as plots
from bigpaint.errors import ConfigError, DamagedStoreError
from bigpaint.field import write_array
from bigpaint.pipeline.report import TIMINGS_BEGIN, write_report
from bigpaint.pipeline.report_slices import count_scale, slice_panel, slices_figure
from bigpaint.pipeline.report_verdict import NO_VERDICT, load_judgement, verdict_section
from bigpaint.pipeline.stages import STAGE_KINDS, StageContext
from bigpaint.pipeline.stats_stages import EVALUATE_OUTPUTS
from bigpaint.stats.evaluate import evaluate
from bigpaint.stats.report import power_report
from tests.stats.reference import gaussian_field

N, BOX = 16, 64.0
EDGES = [1e12, 1e13, 1e15]
KMAX = 0.3
ROLES = ("truth", "painted", "baseline: linear", "baseline: quadratic")


def _meta(kind: str, units: str, window: str, provenance: dict) -> dict:
    return {"box_size": BOX, "kind": kind, "units": units, "redshift": 0.0,
            "provenance": provenance, "mass_assignment": {"scheme": window}}  # fmt: skip


def _write(root: Path, name: str, a: np.ndarray, meta: dict) -> str:
    return write_array(str(root / f"{name}.zarr"), a.astype("f4"), chunks=8, meta=meta).url


def _halo_fields(root: Path, truth_seed: int = 7) -> dict[str, str]:
    pk = lambda k: 2000.0 * (k / 0.05) ** -1.2 * np.exp(-((k / 0.6) ** 2))  # noqa: E731
    g = gaussian_field(N, BOX, pk, 3)
    g *= 0.45 / g.std()
    eps = gaussian_field(N, BOX, pk, 1003)
    go = g + eps * 0.35 * 0.45 / eps.std()
    nbar, bias = (3.0, 0.8), (1.0, 1.8)
    lam = np.stack(
        [c * np.exp(b * g - (b * g.std()) ** 2 / 2) for c, b in zip(nbar, bias, strict=True)]
    )
    lin = np.stack([c * (1 + b * go) for c, b in zip(nbar, bias, strict=True)])
    quad = np.stack([c * (1 + b * go + b * b / 2 * (go**2 - go.var()))
                     for c, b in zip(nbar, bias, strict=True)])  # fmt: skip
    bins = {"mass_bins": EDGES, "mass_units": "Msun/h"}
    delta = _write(root, "density", g, _meta("delta", "1", "CIC", {
        "operation": "lpt", "lpt": {"order": 2, "seed": 7, "tile": 16}}))  # fmt: skip
    sim = {"particles": 32, "steps": 20, "seed": truth_seed, "tile": 16,
           "fof": {"b": 0.2, "min_members": 10}}  # fmt: skip
    truth = np.random.default_rng(11).poisson(lam)
    out = {"delta": delta}
    out["truth"] = _write(root, "truth", truth, _meta("halo_count", "halos", "NGP", {
        "operation": "simulate", "config": sim, **bins}))  # fmt: skip
    out["painted"] = _write(root, "painted", lam, _meta("halo_count", "halos", "NGP", {
        "operation": "paint", "inputs": [delta], "config": {"family": "halo-painter"}, **bins}))  # fmt: skip
    for name, arr, model, order in (("linear", lin, "linear bias", 1),
                                    ("quadratic", quad, "second-order local bias", 2)):  # fmt: skip
        out[name] = _write(root, name, arr, _meta("halo_count", "halos", "NGP", {
            "operation": "paint_bias", "inputs": [delta],
            "config": {"model": model, "order": order}, **bins}))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run directory with a power stage and an evaluate stage, and their records."""
    root = tmp_path_factory.mktemp("report-run")
    fields = _halo_fields(root)
    ev = evaluate(fields["painted"], fields["truth"],
                  {"linear": fields["linear"], "quadratic": fields["quadratic"]},
                  kmax=KMAX, coarse_bins=3, theta=(0.6, 1.8))  # fmt: skip
    ev.write(root / "judge")
    (root / "power").mkdir()
    power_report(
        fields["delta"], out=root / "power" / "power.csv", plot=root / "power" / "power.png"
    )
    records = [
        {"name": "power", "kind": "power", "summary": {"bins": 5}, "seconds": 0.4,
         "outputs": ["power.csv", "power.png"], "dir": str(root / "power")},
        {"name": "judge", "kind": "evaluate", "summary": {"verdict": ev.verdict.overall},
         "seconds": 1.5, "outputs": list(EVALUATE_OUTPUTS), "dir": str(root / "judge")},
    ]  # fmt: skip
    slices = [fields[k] for k in ("delta", "painted", "truth", "linear", "quadratic")]
    return {"root": root, "fields": fields, "ev": ev, "records": records, "slices": slices}


@pytest.fixture(scope="module")
def page(run, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("report")
    result = write_report(out, run["records"], title="test report", slices=run["slices"],
                          run_dir=run["root"])  # fmt: skip
    return {"out": out, "html": (out / "index.html").read_text(), "result": result}


def _cells(row: str) -> list[str]:
    return [
        html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)
    ]


def test_page_opens_with_the_verdict_and_every_criterion(run, page) -> None:
    text = page["html"]
    verdict = json.loads((run["root"] / "judge" / "verdict.json").read_text())
    assert verdict["verdict"] == run["ev"].verdict.overall == page["result"]["verdict"]
    headline = text.index(f"Verdict: {verdict['verdict']}</h2>")
    table = text.index("<table class='verdict'>")
    body = text.index("<body>")
    # nothing but the title comes before the verdict; the table precedes every other section
    assert re.sub(r"<[^>]+>", "", text[body:headline]).strip() == "test report"
    later = [text.index(m) for m in (TIMINGS_BEGIN, "<h2>Slices</h2>", "<h2>Every stage</h2>",
                                      "<h3>power <small>", "<h3>judge <small>")]  # fmt: skip
    assert headline < table < min(later)
    rows = re.findall(r"<tr class='criterion'>(.*?)</tr>", text)
    assert len(rows) == len(verdict["criteria"]) >= 8
    for row, c in zip(rows, verdict["criteria"], strict=True):
        name, level, measured, threshold, status, why = _cells(row)
        assert (name, status, threshold, why) == (c["name"], c["status"], c["threshold"],
                                                  c["detail"])  # fmt: skip
        assert level.split()[0] == c["level"]
        if c["value"] is None:
            assert measured == "n/a"
        else:
            assert measured == f"{c['value']:.4g} ± {c['error']:.2g}"
    # the mass range of each level comes from the evaluation's levels table
    assert f"bin1 [{EDGES[1]:.3g}, {EDGES[2]:.3g})" in [_cells(r)[1] for r in rows]


def test_reading_paragraph_says_what_is_compared_and_how(run, page) -> None:
    text = page["html"]
    para = re.search(r"<p class='howto'>(.*?)</p>", text, re.S)
    assert para and para.start() < text.index("<table class='verdict'>")
    words = html.unescape(re.sub(r"<[^>]+>", "", para.group(1)))
    for phrase in (
        "halo-painter",
        "2LPT density",
        "friends-of-friends halos (linking length b = 0.2, at least 10 particles)",
        "particle-mesh N-body run",
        "same initial conditions (seed 7)",
        "baseline: linear, a linear bias model",
        "baseline: quadratic, a second-order local bias model",
        "1 is right",
        "higher is better",
        "lower is better",
        "a reference, not a floor",  # a painting can beat a noise measured against matter
        f"kmax = {KMAX:g} h/Mpc",
        "docs/evaluate.md",
        "arXiv:1903.10524",
    ):
        assert phrase in words, phrase
    assert "down to the floor" not in words
    # the shot-noise treatment is quoted word for word from the table attribute evaluate writes
    assert run["ev"].levels.attrs["shot_noise_treatment"] in words
    assert f"k_Nyq = {np.pi * N / BOX:.3g} h/Mpc" in words


def test_reading_paragraph_flags_a_truth_from_other_initial_conditions(run, tmp_path) -> None:
    other = _halo_fields(tmp_path, truth_seed=8)
    j = load_judgement(run["records"][1])
    moved = type(j)(j.stage, j.dir, {**j.verdict, "inputs": {**j.verdict["inputs"],
                    "truth": other["truth"], "painted": other["painted"]}}, j.levels)  # fmt: skip
    out = tmp_path / "report"
    out.mkdir()
    words = html.unescape(re.sub(r"<[^>]+>", "", verdict_section(moved, out, None)))
    assert "do not share initial conditions" in words
    assert "same initial conditions" not in words


def test_reading_paragraph_names_the_matter_as_matter_not_as_a_baseline(run, tmp_path) -> None:
    """The simulation's matter only measures the truth's noise: the page must call it the
    matter density of the run (not its halos) and must not list it among the baselines."""
    sim = {"particles": 32, "steps": 20, "seed": 7, "tile": 16,
           "fof": {"b": 0.2, "min_members": 10}}  # fmt: skip
    matter = _write(tmp_path, "matter", np.zeros((N, N, N)), _meta("delta", "1", "CIC", {
        "operation": "simulate", "config": sim}))  # fmt: skip
    j = load_judgement(run["records"][1])
    with_matter = type(j)(j.stage, j.dir, {**j.verdict, "inputs": {**j.verdict["inputs"],
                          "matter": matter}}, j.levels)  # fmt: skip
    out = tmp_path / "report"
    out.mkdir()
    words = html.unescape(re.sub(r"<[^>]+>", "", verdict_section(with_matter, out, None)))
    said = (
        "matter: the matter density of a particle-mesh N-body run (32³ particles, 20 steps, seed 7)"
    )
    assert said in words and "used only to measure the truth's shot noise" in words
    assert "baseline: matter" not in words
    assert words.count("friends-of-friends halos") == 1  # the truth's


def test_figures_and_slices_are_on_the_page(run, page) -> None:
    text, out = page["html"], page["out"]
    sources = re.findall(r"<img src='([^']+)'", text)
    assert all((out / s).read_bytes()[:4] == b"\x89PNG" for s in sources), sources
    section = text[: text.index("</section>")]
    for name in ("spectra_total.png", "abundance.png", "bispectrum_total.png", "pdf.png",
                 "spectra_bin0.png", "bispectrum_bin1.png"):  # fmt: skip
        assert f"<img src='judge-{name}'" in section, name
    assert text.count("<img src='judge-spectra_total.png'") == 1  # not again further down
    assert "<img src='slices.png'" in text and "<img src='power-power.png'" in text
    caption = html.unescape(text[text.index("<h2>Slices</h2>") :].split("</figcaption>")[0])
    assert "axes in Mpc/h" in caption and "share one square-root colour scale" in caption


def test_slices_in_mpc_with_labelled_shared_colour_scales(run) -> None:
    f = run["fields"]
    titles = ("δ", "painted", "truth", "baseline: linear", "baseline: quadratic")
    panels = [slice_panel(f[k], t) for k, t in zip(("delta", "painted", "truth", "linear",
                                                     "quadratic"), titles, strict=True)]  # fmt: skip
    assert all(p.extent == (0.0, BOX, 0.0, BOX) for p in panels)
    assert panels[0].label == "δ (2LPT)" and not panels[0].counts
    assert all(p.label == "halos per cell" and p.counts and p.summed == 2 for p in panels[1:])
    top = max(float(np.max(p.image)) for p in panels[1:])
    assert count_scale(panels) == (0.0, top) and top == float(np.max(panels[2].image))
    fig = slices_figure(panels)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in fig.axes if ax.images] == list(titles)
    assert all(im.norm.vmax == top and im.norm.vmin == 0 for im in images[1:])
    assert images[0].norm.vmax < float(np.max(panels[0].image))  # clipped, arrow on the bar
    for ax in (ax for ax in fig.axes if ax.images):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("y [Mpc/h]", "z [Mpc/h]")
        assert ax.get_xlim() == (0.0, BOX)
    bars = [ax.get_ylabel() for ax in fig.axes if not ax.images and ax.get_visible()]
    assert bars[0] == "δ (2LPT)" and bars[1] == "halos per cell (√ scale)"
    # the linear-bias baseline predicts negative expectations: counted, in their own colour
    assert re.fullmatch(r"halos per cell \(√ scale\); < 0 in \d+% of cells", bars[3])


def test_evaluation_figures_share_labels_units_error_bars_and_k_range(
    run, monkeypatch, tmp_path
) -> None:
    figures = {}
    save = plots._save

    def keep(fig, path):
        figures[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    run["ev"].write(tmp_path)
    assert {"spectra_total.png", "bispectrum_total.png", "pdf.png", "abundance.png"} <= set(figures)
    kf, knyq = 2 * np.pi / BOX, np.pi * N / BOX
    for name, fig in figures.items():
        axes = [ax for ax in fig.axes if ax.get_visible()]
        legend = {t.get_text() for t in fig.legends[0].get_texts()}
        assert set(ROLES) <= legend, (name, legend)
        labels = [lab for ax in axes for lab in (ax.get_xlabel(), ax.get_ylabel()) if lab]
        assert labels and all(re.search(r"\[[^\]]+\]", lab) for lab in labels), (name, labels)
        bars = {
            c.get_label() for ax in axes for c in ax.containers if isinstance(c, ErrorbarContainer)
        }
        want = (
            {"truth"}
            if name == "pdf.png"
            else set(ROLES[1:]) | ({"truth"} if name != "abundance.png" else set())
        )
        assert want <= bars, (name, bars)
        if name.startswith("spectra_"):
            for ax in axes:
                lo, hi = ax.get_xlim()
                assert lo < kf and hi > knyq and ax.get_ylabel()
                assert any(np.allclose(line.get_xdata(), KMAX) for line in ax.lines), name
            assert "verdict kmax = 0.3 h/Mpc" in legend
    spectra = run["ev"].spectra
    assert np.isclose(spectra.k_hi.values[-1], knyq) and np.isclose(spectra.k_lo.values[0], kf)
    fine = (
        spectra.k_hi.values[spectra.in_verdict.values]
        - spectra.k_lo.values[spectra.in_verdict.values]
    )
    coarse = (
        spectra.k_hi.values[~spectra.in_verdict.values]
        - spectra.k_lo.values[~spectra.in_verdict.values]
    )
    assert coarse.size == 3 and coarse.min() > fine.max()


def test_the_noise_lines_say_whether_the_noise_is_poisson_or_measured(
    run, monkeypatch, tmp_path
) -> None:
    """A Poisson N_true caps a perfect expectation; one measured against the matter is what
    the best linear function of the matter reaches, and a painting can beat it: the
    figure's lines must not call the second a cap."""
    figures = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.setdefault(str(path), fig))
    spec = run["ev"].spectra.sel(level="total")
    spec.attrs["shot_noise_true"] = 50.0
    for matter, want in (("", ("truth shot noise V/N_true", "perfect prediction")),
                         ("sim/density.zarr", ("truth noise N_t = P_tt - P_tm^2/P_mm",
                                               "best linear function of the matter"))):  # fmt: skip
        spec.attrs["matter"] = matter
        path = str(tmp_path / f"spectra{len(figures)}.png")
        plots.plot_evaluation_spectra(spec, path, kmax=KMAX)
        labels = {line.get_label() for ax in figures[path].axes for line in ax.lines}
        assert all(any(w in lab for lab in labels) for w in want), (matter, labels)
        assert not any("shot noise caps" in lab for lab in labels) or not matter


def test_a_run_without_evaluate_still_renders(run, tmp_path) -> None:
    res = write_report(tmp_path, run["records"][:1], title="plain", slices=run["slices"][:3],
                       run_dir=run["root"])  # fmt: skip
    text = (tmp_path / "index.html").read_text()
    assert NO_VERDICT in text and "<table class='verdict'>" not in text
    assert text.index(NO_VERDICT) < text.index(TIMINGS_BEGIN) < text.index("<h3>power <small>")
    assert (tmp_path / "slices.png").is_file() and (tmp_path / "power-power.png").is_file()
    assert "verdict" not in res and json.loads((tmp_path / "summary.json").read_text())["stages"]


@pytest.mark.parametrize("damage", ["missing", "garbage", "not a verdict"])
def test_a_damaged_verdict_is_refused_in_one_line(run, tmp_path, damage) -> None:
    judge = tmp_path / "judge"
    shutil.copytree(run["root"] / "judge", judge)
    target = judge / "verdict.json"
    if damage == "missing":
        target.unlink()
    elif damage == "garbage":
        target.write_bytes(b"\x00{not json")
    else:
        target.write_text(json.dumps({"verdict": "MAYBE", "criteria": []}))
    out = tmp_path / "report"
    out.mkdir()
    rec = {**run["records"][1], "dir": str(judge)}
    with pytest.raises(DamagedStoreError, match=re.escape(str(target))) as err:
        write_report(out, [rec], title="t")
    assert "\n" not in str(err.value) and "run the pipeline again" in str(err.value)
    assert list(out.iterdir()) == []  # nothing half-written


def test_report_params_refuse_too_many_slices_and_unmatched_titles(tmp_path) -> None:
    kind = STAGE_KINDS["report"]
    ctx = StageContext("report", tmp_path, "stage 'report' (report)", lambda _m: None)
    ok = kind.validate({"slices": ["a.zarr"] * 6, "slice_titles": list("abcdef")}, ctx)
    assert len(ok.slices) == 6
    with pytest.raises(ConfigError, match="slices") as err:
        kind.validate({"slices": ["a.zarr"] * 7}, ctx)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="2 slice_titles for 3 slices"):
        kind.validate({"slices": ["a.zarr"] * 3, "slice_titles": ["x", "y"]}, ctx)
    with pytest.raises(ConfigError, match="at most 6"):
        write_report(tmp_path, [], title="t", slices=["a.zarr"] * 7)


def test_failed_criteria_are_said_in_words(tmp_path) -> None:
    from bigpaint.pipeline.report_verdict import Judgement, _failures

    def crit(name, level, value, status, detail=""):
        return {"name": name, "level": level, "value": value, "error": 0.01, "status": status,
                "threshold": "t", "detail": detail}  # fmt: skip

    criteria = [
        crit("abundance", "bin0", 0.93, "FAIL"),
        crit("abundance", "bin1", 1.01, "PASS"),
        crit("transfer", "total", 0.0596, "FAIL"),
        crit("r_c every bin", "total", -0.0049, "FAIL", "worst bin k = 0.0645 h/Mpc"),
        crit("bispectrum", "total", 1.3, "FAIL"),
        crit("r_c mean", "total", None, "NOT JUDGED"),
    ]
    j = Judgement("judge", tmp_path, {"verdict": "FAIL", "criteria": criteria}, None)
    items = re.findall(r"<li>(.*?)</li>", _failures(j))
    assert len(items) == 4
    assert "0.930 times the true halo count: too few" in items[0]
    assert "off by 6.0 % on average" in items[1]
    assert "-0.0049" in items[2] and "k = 0.0645 h/Mpc" in items[2]
    assert "1.300 times the truth&#x27;s (stronger)" in items[3]
    passing = Judgement("judge", tmp_path, {"verdict": "PASS", "criteria": criteria[1:2]}, None)
    assert _failures(passing) == ""


@pytest.mark.parametrize("same_checkpoint", [True, False])
def test_a_failure_of_a_pretrained_painter_is_set_against_its_card(tmp_path, same_checkpoint):
    """A painting by a shipped painter (its card name and checkpoint hash in the provenance)
    gets, beside each failure, the card's figure for that criterion on every held-out box;
    a painting by another checkpoint of that name gets none."""
    from bigpaint.painters.pretrained import find_pretrained
    from bigpaint.pipeline.report_verdict import Judgement, _failures

    shipped = find_pretrained()["halo-painter-2mpc"]
    card = json.loads((shipped.path / "card.json").read_text())
    digest = card["checkpoint_hash"] if same_checkpoint else "0" * 16
    prov = {"operation": "paint", "model_card": {"name": "halo-painter-2mpc", "overridden": []},
            "config": {"family": "halo-painter", "checkpoint_hash": digest}}  # fmt: skip
    painted = _write(
        tmp_path, "painted", np.ones((8, 8, 8)), _meta("halo_count", "halos", "NGP", prov)
    )
    crit = {"name": "transfer", "level": "total", "value": 0.0596, "error": 0.01,
            "status": "FAIL", "threshold": "t", "detail": ""}  # fmt: skip
    j = Judgement("judge", tmp_path, {"verdict": "FAIL", "criteria": [crit],
                                      "inputs": {"painted": painted}}, None)  # fmt: skip
    (item,) = re.findall(r"<li>(.*?)</li>", _failures(j))
    boxes = [b for k, b in card["verdict"]["figures"].items() if k.startswith("verdict box")]
    assert len(boxes) >= 3
    for box in boxes:
        figure = box["criteria"]["transfer [total]"]
        shown = f"{figure['value']:.4g} ± {figure['error']:.2g} (seed {box['seed']})"
        assert (shown in html.unescape(item)) is same_checkpoint
    if same_checkpoint:
        assert "card (halo-painter-2mpc)" in item and "this box lies above them" in item
    else:
        assert "card" not in item
