"""Shared fixtures for the initial-conditions tests: one tabulated spectrum per session."""

from __future__ import annotations

import pytest

from bigpaint.ics.power import LinearPower, linear_power


@pytest.fixture(scope="session")
def lp() -> LinearPower:
    """Eisenstein-Hu spectrum of the default cosmology (colossus)."""
    return linear_power()
