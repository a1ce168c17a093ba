"""Jobs that cannot fit, refused up front, before any cluster starts (they used to end in a
MemoryError after minutes, or hang with no output): a smoothing wider than the box or with a
window larger than memory, FFT grids larger than a worker or the machine, a paint memory
budget below the painter's smallest sub-tile, worker memory limits no task can run under."""

from __future__ import annotations

from pathlib import Path

from .conftest import refused

SMOOTH = ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "4"]


def _write(ws: Path, name: str, text: str) -> str:
    (ws / name).write_text(text)
    return name


def test_smoothing_wider_than_the_box(ws):
    refused(
        ws,
        ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "300"],
        r"sigma 300 Mpc/h is wider than the 64 Mpc/h box of in\.zarr: .*give sigma below 64 Mpc/h",
    )


def test_smoothing_window_larger_than_memory(ws):
    """sigma below the box, but a kernel cut at 10^4 sigma: each block would read a window of
    ~10^5 voxels per side."""
    refused(
        ws,
        ["smooth", "in.zarr", "o.zarr", "--sigma-mpc", "40", "--truncate", "10000"],
        r"smoothing in\.zarr with sigma 40 Mpc/h reads a window of \d+x\d+x\d+ voxels per block "
        r"\(.* with its copies\), more than the .* a task has; give smaller --chunks",
    )


def test_fft_plane_larger_than_a_worker(ws):
    """One plane of a 10^6 grid (10.9 TiB, three times) fits no machine's worker."""
    cfg = _write(ws, "ics.yaml", "output: ics.zarr\ngrid: 1000000\nbox_size: 1000.0\nseed: 1\n")
    refused(
        ws,
        ["ics", cfg],
        r"grid 1000000\^3 needs 10\.9 TiB per FFT task \(a whole plane of single-precision "
        r"modes, three times\), more than the .* a worker may use; use fft_backend: pencil",
    )


def test_fft_modes_larger_than_the_machine(ws):
    """Pencils fit any worker, but 100000^3 modes are petabytes."""
    cfg = _write(
        ws,
        "lpt.yaml",
        "output: lpt.zarr\ngrid: 64\nnmesh: 100000\nbox_size: 1000.0\nseed: 1\n"
        "fft_backend: pencil\n",
    )
    refused(
        ws,
        ["lpt", cfg],
        r"grid 100000\^3 has 3\.55 PiB of single-precision Fourier modes, more than this "
        r"machine's memory and the free disk of .* together",
    )


def test_fft_plane_larger_than_the_configured_workers(ws):
    """One FFT plane of 8192^3 is 768 MiB: more than the 512 MiB workers of the cluster file."""
    cfg = _write(ws, "ics.yaml", "output: ics.zarr\ngrid: 8192\nbox_size: 1000.0\nseed: 1\n")
    _write(ws, "small.yaml", "cluster:\n  kind: local\n  n_workers: 1\n  memory_limit: 512MiB\n")
    refused(
        ws,
        ["ics", cfg, "--cluster", "small.yaml"],
        r"grid 8192\^3 needs 768 MiB per FFT task .*more than the 512 MiB a worker may use",
    )


def test_paint_memory_budget_below_the_smallest_subtile(ws):
    """1 byte used to paint one voxel per forward pass: 0/8 blocks after 300 s."""
    refused(
        ws,
        ["paint", "--checkpoint", "halo.pt", "in.zarr", "o.zarr", "--memory-budget", "1B"],
        r"memory budget 1 B is below the 1\.07 MiB that halo-painter needs for its smallest "
        r"sub-tile \(a 12x12x12-voxel window at 648 bytes of activations per voxel\); give "
        r"--memory-budget \(memory_budget\) of at least 1\.07 MiB",
    )


def test_worker_memory_limit_below_the_floor(ws):
    """A 1 KiB worker pauses before its first task: the job used to wait for ever."""
    cfg = _write(ws, "tiny.yaml", "cluster:\n  kind: local\n  memory_limit: 1KiB\n")
    refused(
        ws,
        [*SMOOTH, "--cluster", cfg],
        r"tiny\.yaml: cluster\.memory_limit: memory_limit '1KiB' leaves 1 KiB per worker, below "
        r"the 512 MiB a worker needs to run any task .*give at least 512 MiB, 'auto', or 0",
    )


def test_slurm_job_memory_shared_below_the_floor(ws):
    """1 GiB per job looks fine until four worker processes share it."""
    cfg = _write(
        ws,
        "slurm.yaml",
        "cluster:\n  kind: slurm\n  cores: 4\n  memory: 1GiB\n  processes: 4\n",
    )
    refused(
        ws,
        [*SMOOTH, "--cluster", cfg],
        r"memory '1GiB' shared by 4 worker processes leaves 256 MiB per worker, below the 512 "
        r"MiB .*give at least 2 GiB$",
    )
