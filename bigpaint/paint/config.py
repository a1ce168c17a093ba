"""The one typed spec of a paint job, read by every front end.

:class:`PaintSpec` is what to paint and how: the library's :func:`bigpaint.paint.paint_field`
keywords, ``bigpaint paint``'s flags and YAML file, and a pipeline's ``paint`` stage all
become one, and :func:`bigpaint.paint.paint` runs it. :class:`PaintConfig` is the CLI's
file: the spec plus the ``cluster`` it runs on. A pipeline stage gives the spec without
``output`` and ``overwrite``, which the pipeline sets.

``source`` is accepted as an older name of ``input`` (pipeline files have used it), so
existing files keep their meaning and their stage hashes.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from bigpaint.config import BlockEdges, ClusterConfig, LocalClusterConfig, parse_size
from bigpaint.painters.card import MismatchName

__all__ = ["PaintConfig", "PaintSpec", "SlabConfig"]


class SlabConfig(BaseModel):
    """Projected slabs for 2-D painters: ``axis`` (x, y, z or 0, 1, 2) and ``thickness`` in
    voxels (default: the checkpoint's training projection depth)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    axis: Literal["x", "y", "z", 0, 1, 2] = 0
    thickness: int | None = Field(None, ge=1)


class PaintSpec(BaseModel):
    """One paint job (see :func:`bigpaint.paint.paint_field` for each key's meaning).

    Attributes
    ----------
    checkpoint, input, output : str
        Checkpoint directory (or ``pretrained:NAME``), input Field, output Field (paths or
        URLs). ``source`` is accepted as an older name of ``input``.
    chunks : tuple of int, optional
        Output write blocks in voxels (one positive integer is the edge on every axis; three
        are checked by the plan).
    margin : int, optional
        Seam margin per side in voxels (U-Nets).
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    memory_budget : str or int, optional
        Activation bytes per forward call (``"2GiB"``), a positive size.
    autocast : {None, "bf16", "fp16"}
    slab : SlabConfig, optional
    seed : int
        Seed of position-keyed noise, >= 0.
    fixed_tile : int, optional
        Tile edge in voxels of bit-identical painting across chunkings.
    allow_mismatch : tuple of str
        Model-card checks to let through (``cell_size``, ``redshift``, ``cosmology``,
        ``kind``, ``mass_assignment``; a list or ``"redshift,cosmology"``), kept sorted and
        recorded in the output's provenance.
    overwrite : bool
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str
    input: str = Field(validation_alias=AliasChoices("input", "source"))
    output: str
    chunks: BlockEdges = None
    margin: int | None = Field(None, ge=0)
    device: str = "auto"
    memory_budget: str | int | None = None
    autocast: Literal["bf16", "fp16"] | None = None
    slab: SlabConfig | None = None
    seed: int = Field(0, ge=0)
    fixed_tile: int | None = Field(None, ge=1)
    allow_mismatch: tuple[MismatchName, ...] = ()
    overwrite: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_input_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "input" in data and "source" in data:
            raise ValueError("give input or its older name source, not both")
        return data

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _path_text(cls, v: Any) -> Any:
        return v if isinstance(v, str) else str(v) if hasattr(v, "__fspath__") else v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {v!r}")

    @field_validator("memory_budget")
    @classmethod
    def _budget(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            parse_size(v, "--memory-budget (memory_budget)")
        return v

    @field_validator("slab", mode="before")
    @classmethod
    def _slab(cls, v: Any) -> Any:
        if is_dataclass(v) and not isinstance(v, type):  # a bigpaint.paint.plan.SlabSpec
            return asdict(v)
        return v

    @field_validator("allow_mismatch", mode="before")
    @classmethod
    def _mismatch(cls, v: Any) -> Any:
        if v is None:
            return ()
        items = v.split(",") if isinstance(v, str) else list(v)
        return tuple(sorted({str(i).strip() for i in items if str(i).strip()}))

    @property
    def budget_bytes(self) -> int | None:
        """``memory_budget`` in bytes (None: the default)."""
        if self.memory_budget is None:
            return None
        return parse_size(self.memory_budget, "memory_budget")

    @property
    def slab_mapping(self) -> dict[str, Any] | None:
        """``slab`` as :meth:`bigpaint.paint.plan.SlabSpec.parse` takes it."""
        return None if self.slab is None else self.slab.model_dump(exclude_none=True)


class PaintConfig(PaintSpec):
    """``bigpaint paint --config FILE``: a :class:`PaintSpec` and the cluster to run it on.

    Attributes
    ----------
    cluster : cluster config
        ``kind: local | slurm | local-cuda`` (as ``--cluster`` files).
    """

    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)

    def spec(self) -> PaintSpec:
        """The job without the cluster."""
        return PaintSpec.model_validate(self.model_dump(exclude={"cluster"}))
