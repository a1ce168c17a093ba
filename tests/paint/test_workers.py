"""Worker-side pieces: device choice, GPU resource annotation, plugin, sub-tile windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bigpaint.errors import ConfigError
from bigpaint.paint.engine import _gpu_resources
from bigpaint.paint.workers import (
    PainterPlugin,
    _subtile_size,
    autocast_dtype,
    bytes_per_voxel,
    resolve_device,
    subtile_windows,
)

from .conftest import make_checkpoint, small


class _FakeClient:
    def __init__(self, resources):
        self._workers = {f"tcp://h:{i}": {"resources": r} for i, r in enumerate(resources)}

    def scheduler_info(self):
        return {"workers": self._workers}


def test_gpu_tasks_are_annotated_only_where_workers_offer_gpus():
    gpus = _FakeClient([{"GPU": 1}, {"GPU": 1}])
    assert _gpu_resources(gpus, "auto") == {"GPU": 1}
    assert _gpu_resources(gpus, "cuda") == {"GPU": 1}
    assert _gpu_resources(gpus, "cpu") is None
    mixed = _FakeClient([{"GPU": 1}, {}])
    assert _gpu_resources(mixed, "auto") is None  # auto may run on CPU workers too
    assert _gpu_resources(mixed, "cuda") == {"GPU": 1}
    assert _gpu_resources(_FakeClient([{}]), "cuda") is None
    assert _gpu_resources(None, "cuda") is None


def test_device_and_autocast_choices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="auto, cpu or cuda"):
        resolve_device("tpu")
    assert autocast_dtype(None) is None and autocast_dtype("bf16") is torch.bfloat16
    with pytest.raises(ConfigError, match="bf16"):
        autocast_dtype("int8")


def test_plugin_sets_threads_and_preloads(tmp_path):
    from bigpaint.paint.plan import checkpoint_hash
    from bigpaint.paint.workers import _CACHE, clear_painter_cache

    ck = make_checkpoint(tmp_path / "h.painter", "halo-painter")
    h = checkpoint_hash(ck)

    class _W:
        address = "tcp://127.0.0.1:1234"

        class state:
            nthreads = 1

    clear_painter_cache()
    old = torch.get_num_threads()
    try:
        PainterPlugin(ck, h, "cpu", {"127.0.0.1": 1}).setup(_W())
        assert torch.get_num_threads() == max(1, __import__("os").cpu_count())
    finally:
        torch.set_num_threads(old)
    assert (h, "cpu") in _CACHE
    assert PainterPlugin(ck, h, "cpu").name == f"bigpaint-painter-{h}-cpu"


def test_subtile_windows_cover_the_core_once():
    for mode, margin, align in (("valid", 4, 1), ("same", 5, 4), ("tile", 0, 8)):
        jobs = subtile_windows(
            (-3, 5, 0), (13, 7, 16), mode=mode, margin=margin, alignment=align, tile=4
        )
        cover = np.zeros((13, 7, 16), int)
        for sub, win in jobs:
            cover[
                tuple(slice(a - s, b - s) for (a, b), s in zip(sub, (-3, 5, 0), strict=True))
            ] += 1
            for (a, b), (lo, hi) in zip(sub, win, strict=True):
                assert lo <= a - margin and hi >= b + margin
                if mode != "valid":
                    assert lo % align == 0 and hi % align == 0
        assert (cover == 1).all()


def test_subtile_size_judges_the_windows_it_really_gets():
    kw = {"mode": "same", "margin": 32, "align": 32, "bpv": 1}
    # an aligned 128^3 core paints a 192^3 window: it fits a 192^3 budget whole
    assert _subtile_size((128, 0, 256), (128,) * 3, budget=192**3, **kw) == 128
    # unaligned, its window is 224^3 along each axis, so it is split once
    assert _subtile_size((8, 8, 8), (128,) * 3, budget=192**3, **kw) == 64
    valid = kw | {"mode": "valid"}  # core + 2 margins, any origin
    assert _subtile_size((3, 5, 7), (128,) * 3, budget=192**3, **valid) == 128
    assert _subtile_size((3, 5, 7), (128,) * 3, budget=192**3 - 1, **valid) == 64


def test_bytes_per_voxel_grows_with_width():
    assert bytes_per_voxel(small("protohalo-unet", filters=4)) > bytes_per_voxel(
        small("protohalo-unet", filters=2)
    )
