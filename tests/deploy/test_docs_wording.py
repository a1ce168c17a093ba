"""User-facing text speaks to users about the project, and cites papers a clone can find.

README, BENCHMARKS and docs, the painter docstrings, the example configs and the benchmark
scripts must not speak of how the project was built (sessions, lent machines, numbered
internal issues, a development VM) and must not point at paper texts outside the repository;
each painter page and module cites its paper with an arXiv id. Other projects' issue
numbers (``dask #6688``) are useful to users and allowed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

FILES = sorted(
    [
        ROOT / "README.md",
        ROOT / "BENCHMARKS.md",
        ROOT / "pyproject.toml",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "bigpaint" / "painters").glob("*.py"),
        *(ROOT / "configs").glob("*.yaml"),
        *(ROOT / "benchmarks").glob("*.py"),
    ]
)

# Each pattern names wording about the making of the project, not about the project.
BUILD_WORDING = {
    "a work session": re.compile(r"\b(this|that|each|the) sessions?\b|\bsessions?'", re.I),
    "a lent machine": re.compile(r"\b(was|were|is|not) lent\b", re.I),
    "an internal issue number": re.compile(r"\bissues? ?#?\d+\b", re.I),
    "the development machine": re.compile(r"development VM|this project's [\w-]+ VM", re.I),
    "paper texts outside the repository": re.compile(r"shared/papers"),
}
ARXIV = re.compile(r"arXiv:\d{4}\.\d{4,5}")


# Known wording still to fix; strict, so the mark must go once the file is clean.
KNOWN: dict[str, str] = {}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _marked(path: Path):
    reason = KNOWN.get(_rel(path))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(path, marks=marks, id=_rel(path))


@pytest.mark.parametrize("path", [_marked(p) for p in FILES])
def test_text_does_not_speak_of_how_the_project_was_built(path: Path) -> None:
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {what} ({m.group(0)!r})"
        for text in [path.read_text()]
        for what, pattern in BUILD_WORDING.items()
        for m in pattern.finditer(text)
    ]
    assert not found, f"{_rel(path)} speaks of how the project was built: {found}"


def test_the_patterns_catch_build_wording_and_spare_upstream_issues() -> None:
    def hits(text: str) -> list[str]:
        return [w for w, p in BUILD_WORDING.items() if p.search(text)]

    assert hits("measured during this session") == ["a work session"]
    assert hits("no GPU was lent") == ["a lent machine"]
    assert hits("the seam error (issue #7)") == ["an internal issue number"]
    assert hits("Deposit (`bench_deposit.py`, issue 3)") == ["an internal issue number"]
    assert hits("on this project's 2-core VM") == ["the development machine"]
    assert hits("``../shared/papers/dm2gal.txt``") == ["paper texts outside the repository"]
    assert hits("dask #6688, #11580 and #3671 report it; numba #7133") == []
    assert hits("start_new_session=True, a pytest session fixture") == []


@pytest.mark.parametrize(
    "path",
    [
        *sorted((ROOT / "docs" / "painters").glob("*.md")),
        *(
            ROOT / "bigpaint" / "painters" / f"{name}.py"
            for name in ("halo_painter", "protohalo_unet", "dm2gal", "ember", "cosmic_web_gan")
        ),
    ],
    ids=_rel,
)
def test_each_painter_cites_its_paper_by_arxiv_id(path: Path) -> None:
    assert ARXIV.search(path.read_text()), f"{_rel(path)} cites its paper without an arXiv id"
