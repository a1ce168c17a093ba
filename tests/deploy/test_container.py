"""The Apptainer definition builds its environment from the project's own files.

Apptainer cannot be installed on this test machine (no privileges, no network beyond PyPI),
so the image itself is not built here. What is checked instead:

* every source in ``%files`` exists in the checkout, and they are everything ``pip`` needs
  to build the package (pyproject.toml, its readme, the package directory);
* ``%post`` runs the copy of ``deploy/install.sh`` that ``%files`` put in the image, with the
  torch choice passed through ``BIGPAINT_TORCH``/``BIGPAINT_TORCH_INDEX``, which install.sh
  honours; the ``{{ }}`` placeholders are all declared in ``%arguments``; the scripts parse;
* (slow) the build's %files and %post steps run for real in a scratch root, with the image's
  ``/opt`` moved under it and the local CPU torch, and the image's ``%test`` then passes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib

import pytest

from tests.deploy.conftest import ROOT

DEF = ROOT / "deploy" / "bigpaint.def"


def sections(text: str) -> dict[str, str]:
    """Header keys (``Bootstrap``, ``From``) and ``%section`` bodies of a definition file."""
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^%(\w+)\s*$", line)
        if m:
            current = m.group(1)
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
        elif re.match(r"^(\w+):\s*(.+)$", line):
            key, value = line.split(":", 1)
            out[key] = value.strip()
    return out


def files_pairs(body: str) -> list[tuple[str, str]]:
    pairs = []
    for line in body.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            src, dst = line.split()
            pairs.append((src, dst))
    return pairs


def arguments(body: str) -> dict[str, str]:
    return dict(
        line.strip().split("=", 1) for line in body.splitlines() if "=" in line and line.strip()
    )


def render(body: str, args: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: args[m.group(1)], body)


@pytest.fixture(scope="module")
def spec() -> dict[str, str]:
    return sections(DEF.read_text())


def test_header_and_sections(spec):
    assert spec["Bootstrap"] == "docker"
    assert re.match(r"python:3\.(1[1-9])", spec["From"]), "the base must have Python >= 3.11"
    for name in ("arguments", "files", "post", "environment", "runscript", "test"):
        assert name in spec, f"%{name} missing"


def test_files_are_the_projects_own_and_enough_to_build(spec):
    pairs = files_pairs(spec["files"])
    for src, dst in pairs:
        assert (ROOT / src).exists(), f"%files names {src}, which is not in the checkout"
        assert dst == f"/opt/bigpaint/{src}", "files keep their place in the project tree"
    copied = {src for src, _ in pairs}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "deploy/install.sh", project["project"]["readme"]}
    needed |= {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert needed <= copied, f"missing from %files: {sorted(needed - copied)}"


def test_post_runs_the_projects_install_script_with_the_torch_choice(spec):
    pairs = dict(files_pairs(spec["files"]))
    args = arguments(spec["arguments"])
    post = spec["post"]
    assert set(re.findall(r"\{\{\s*(\w+)\s*\}\}", post)) <= set(args), "undeclared argument"
    rendered = render(post, args)
    assert re.search(rf"^\s*bash {re.escape(pairs['deploy/install.sh'])}\b", rendered, re.M)
    assert f'BIGPAINT_TORCH="{args["TORCH"]}"' in rendered
    assert f'BIGPAINT_TORCH_INDEX="{args["TORCH_INDEX"]}"' in rendered
    assert args["TORCH"].startswith("torch==")
    install = (ROOT / "deploy" / "install.sh").read_text()
    for var in ("BIGPAINT_TORCH", "BIGPAINT_TORCH_INDEX", "BIGPAINT_VENV", "PYTHON"):
        assert f"${{{var}" in install, f"install.sh does not read {var}"
    # the image's PATH finds the venv install.sh makes
    venv = re.search(r"BIGPAINT_VENV=(\S+)", rendered).group(1)
    assert f"{venv}/bin" in spec["environment"]
    for body in (rendered, spec["environment"], spec["runscript"], spec["test"]):
        subprocess.run(["bash", "-n"], input=body, text=True, check=True)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_build_steps_run_in_a_scratch_root(spec, tmp_path):
    """%files then %post for real (install.sh makes a venv and pip-installs the project from
    the copied files), then %test with %environment; /opt is moved under a scratch root and
    torch is the CPU build the local package index has (no CUDA index reachable here)."""
    root = tmp_path / "root"
    for src, dst in files_pairs(spec["files"]):
        target = root / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / src).is_dir():
            shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / src, target)
    args = {**arguments(spec["arguments"]), "TORCH_INDEX": ""}
    moved = str(root / "opt")

    def step(body: str, env: dict[str, str] | None = None) -> None:
        script = render(body, args).replace("/opt/", moved + "/")
        subprocess.run(
            ["bash", "-c", script], check=True, env={**os.environ, **(env or {})}, cwd=tmp_path
        )

    step(spec["post"])
    step(spec["environment"] + "\n" + spec["test"])
