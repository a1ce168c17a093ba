"""Start-up cost: importing the package and the CLI loads none of the heavy libraries.

Every ``bigpaint`` command imports the package and the command group before it parses its
options, so ``bigpaint --help`` and a mistyped option must not pay for xarray, zarr, dask,
torch or numba; a subcommand imports what it needs when it runs. Checked in a fresh
interpreter (this test process has imported everything already).
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("xarray", "zarr", "pandas", "dask", "distributed", "torch", "numba", "scipy",
         "matplotlib", "numpy")  # fmt: skip


def _loaded(code: str) -> list[str]:
    probe = f"{code}; import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_the_package_and_the_cli_loads_no_heavy_library():
    assert _loaded("import bigpaint") == []
    assert _loaded("import bigpaint.cli") == []


def test_the_field_names_still_come_from_the_package():
    assert "xarray" in _loaded("import bigpaint; bigpaint.open_field")
    out = subprocess.run(
        [sys.executable, "-c", "import bigpaint; bigpaint.no_such_name"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "has no attribute 'no_such_name'" in out.stderr


def test_help_runs_without_them():
    code = (
        "import sys; from bigpaint.cli import main; sys.argv = ['bigpaint', '--help'];"
        "\ntry:\n    main()\nexcept SystemExit:\n    pass"
    )
    probe = f"{code}\nprint('LOADED', ' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "Usage:" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LOADED"


def test_the_power_spectrum_of_an_array_loads_no_field_store_or_other_statistic():
    """Nor dask: an array in memory is transformed whole, and dask.array alone costs about a
    fifth of a second."""
    probe = (
        "import numpy as np, sys; from bigpaint.stats.power import power_spectrum; "
        "power_spectrum(np.ones((8, 8, 8), 'f4'), box_size=8.0); "
        "print(' '.join(m for m in ('zarr', 'dask', 'bigpaint.stats.bispectrum', "
        "'bigpaint.stats.dice', 'bigpaint.stats.evaluate', 'bigpaint.stats.baselines') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_a_function_named_as_its_module_stays_the_function_once_the_module_loads():
    probe = (
        "import bigpaint.stats as s; import bigpaint.stats.bispectrum, bigpaint.stats.dice; "
        "from bigpaint.stats import bispectrum, dice; "
        "print(callable(s.bispectrum), callable(s.dice), bispectrum.__module__, dice.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "True",
        "True",
        "bigpaint.stats.bispectrum",
        "bigpaint.stats.dice",
    ]
