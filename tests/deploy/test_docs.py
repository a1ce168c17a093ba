"""The documentation cannot drift from the code.

- the budget tables in docs/deploy.md are what ``deploy/budget.py`` prints for the arguments
  written above each table;
- every painter page states the parameter count, context, alignment and mode that the code
  derives for each config it lists, and every registered family has a page;
- docs/cli.md is what ``docs/make_cli_reference.py`` generates, and the README's command table
  names every registered command;
- the example family of docs/adding-a-painter.md runs;
- the README keeps the two set-up commands, and local links in the docs point at files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT

DOCS = ROOT / "docs"


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_budget_tables_are_what_the_script_prints():
    budget = _module(ROOT / "deploy" / "budget.py")
    text = (DOCS / "deploy.md").read_text()
    blocks = re.findall(r"<!-- budget: (.*?) -->\n```text\n(.*?)```", text, re.S)
    assert len(blocks) >= 1
    for args, written in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            budget.main(shlex.split(args))
        assert written == out.getvalue(), f"docs/deploy.md budget for '{args}' is stale"


def _painter_rows(text: str) -> list[list[str]]:
    table = text.split("<!-- numbers -->\n", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    assert rows[0] == ["config", "parameters", "context", "alignment", "mode"]
    return rows[2:]


def _model(cell: str) -> dict:
    if cell == "paper defaults":
        return {}
    inner = cell.strip("`")
    if inner.endswith(".yaml"):
        return yaml.safe_load((ROOT / inner).read_text()).get("model") or {}
    return json.loads(inner)


def test_painter_pages_state_the_numbers_the_code_derives():
    from bigpaint.painters import build_painter, families

    pages = {p.stem: p for p in (DOCS / "painters").glob("*.md")}
    assert set(families()) <= set(pages), "a registered family has no page"
    for family, page in pages.items():
        rows = _painter_rows(page.read_text())
        assert rows, f"{page} lists no config"
        for config, params, context, alignment, mode in rows:
            p = build_painter(family, _model(config))
            got = (f"{p.parameter_count():,}", str(p.context), str(p.alignment), p.mode)
            assert (params, context, alignment, mode) == got, f"{page.name}: {config}"


def test_cli_reference_is_current_and_the_readme_names_every_command():
    ref = _module(DOCS / "make_cli_reference.py")
    assert (DOCS / "cli.md").read_text() == ref.render(), (
        "docs/cli.md is stale: run python docs/make_cli_reference.py"
    )
    readme = (ROOT / "README.md").read_text()
    missing = [path for path in ref.command_paths() if f"| `{path}`" not in readme]
    assert not missing, f"README's command table lacks {missing}"


def test_adding_a_painter_example_runs():
    text = (DOCS / "adding-a-painter.md").read_text()
    code = re.search(r"<!-- example[^>]*-->\n```python\n(.*?)```", text, re.S).group(1)
    # a fresh interpreter: the example registers a family, which must not leak into this one
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_readme_keeps_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "bash deploy/install.sh && .venv/bin/bigpaint quickstart\n" in readme
    assert "bash deploy/install.sh test && .venv/bin/python -m pytest -n auto\n" in readme
    # CI runs the README's test command
    assert ".venv/bin/python -m pytest -n auto " in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(
    "doc", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))]
)
def test_local_links_point_at_files(doc):
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
        assert (path.parent / target).exists(), f"{doc} links to missing {target}"
