"""The typed pipeline config (``bigpaint run CONFIG``) and the checks made before any work.

A pipeline YAML names a run directory, a cluster and an ordered list of stages::

    out: runs/example                  # run directory: one folder per stage, records in _pipeline/
    cluster: {kind: local, n_workers: 2}
    stages:
      - name: train-box
        kind: simulate                 # one of bigpaint.pipeline.stages.STAGE_KINDS
        params: {particles: 32, box_size: 64.0, seed: 1}
      - name: painter
        kind: train
        params:
          family: halo-painter
          data:
            inputs: ["@train-box/lpt_density.zarr"]    # an output of an earlier stage
            targets: ["@train-box/halo_counts.zarr"]

Every stage writes under ``OUT/<name>/``. An input is either an existing path or a reference
``@stage/output`` to an output an *earlier* stage declares. Each stage's ``params`` are
validated by the model of its kind (the library's own config where one exists, e.g.
:class:`bigpaint.sim.simulate.SimulateConfig`), so a typo is one line naming the stage, the
key and the closest valid key. The paths a stage writes are set by the pipeline, never by
``params``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bigpaint.config import ClusterConfig, LocalClusterConfig
from bigpaint.errors import ConfigError

__all__ = ["PipelineConfig", "Reference", "StageConfig", "parse_reference"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StageConfig(BaseModel):
    """One stage: a unique ``name`` (its folder), a ``kind`` and that kind's ``params``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class PipelineConfig(BaseModel):
    """A whole run: where it goes, what it runs on, and its stages in order.

    Attributes
    ----------
    out : str
        Run directory (relative paths are relative to the working directory).
    cluster : ClusterConfig
        The Dask cluster of the stages that compute chunk by chunk (``lpt``, ``paint``,
        ``power``, ``bispectrum``, ``segment``); started when the first of them runs.
    stages : list of StageConfig
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    out: str
    cluster: ClusterConfig = Field(default_factory=LocalClusterConfig)
    stages: list[StageConfig] = Field(min_length=1)


@dataclass(frozen=True)
class Reference:
    """``@stage/output``: an output of an earlier stage."""

    stage: str
    output: str

    def __str__(self) -> str:
        return f"@{self.stage}/{self.output}"


def parse_reference(value: str, where: str) -> Reference | None:
    """The :class:`Reference` a string names, or None for a plain path."""
    if not value.startswith("@"):
        return None
    stage, sep, output = value[1:].partition("/")
    if not sep or not stage or not output:
        raise ConfigError(
            f"{where}: {value!r} is not a reference; write '@stage/output', e.g. "
            "'@train-box/lpt_density.zarr'"
        )
    return Reference(stage, output.rstrip("/"))


def check_names(cfg: PipelineConfig, source: str) -> None:
    """Refuse empty, duplicated or path-like stage names."""
    seen: set[str] = set()
    for i, st in enumerate(cfg.stages):
        if not _NAME.match(st.name) or st.name in ("_pipeline",):
            raise ConfigError(
                f"{source}: stage {i + 1} has name {st.name!r}; use letters, digits, '-', '_' "
                "or '.' (it becomes a folder of the run directory)"
            )
        if st.name in seen:
            raise ConfigError(f"{source}: two stages are named {st.name!r}; give each a new name")
        seen.add(st.name)


def get_dotted(params: Mapping[str, Any], dotted: str) -> Any:
    """``params["a"]["b"]`` for ``"a.b"``; None when absent."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def set_dotted(params: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``params`` with ``dotted`` set to ``value``."""
    head, _, rest = dotted.partition(".")
    out = dict(params)
    if rest:
        sub = out.get(head)
        out[head] = set_dotted(sub if isinstance(sub, Mapping) else {}, rest, value)
    else:
        out[head] = value
    return out


def closest(word: str, options: list[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    hint = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def resolve_out(out: str | Path) -> Path:
    """The run directory as an absolute path."""
    return Path(out).expanduser().absolute()
