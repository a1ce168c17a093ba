"""Painted catalogues: Poisson-sample a painted count Field into halos.

A painted ``halo_count`` Field holds, per mass bin (channel), the expected number of halos
in each cell. :func:`sample_catalogue` turns it into a halo catalogue (Parquet, the columns
and units of :mod:`bigpaint.catalog_units`): a Poisson count per cell and bin, positions
uniform in the cell or following a finer density Field, masses from the bin's mass
function (:mod:`bigpaint.sample.masses`), and velocities from a velocity Field when one is
given. It runs block by block, resumes from the blocks it finished, and draws the same
catalogue for any block layout (:mod:`bigpaint.sample.streams`).
"""

from __future__ import annotations

from bigpaint.sample.run import SampleResult, sample_catalogue

__all__ = ["SampleResult", "sample_catalogue"]
