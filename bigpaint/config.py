"""Typed configuration: pydantic models read from YAML, with one-line errors.

Unknown keys are refused (a typo must not be silently ignored) and the error names the key,
the file, and the closest valid key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bigpaint.errors import ConfigError

__all__ = [
    "AdaptConfig",
    "ClusterConfig",
    "LocalClusterConfig",
    "LocalCudaClusterConfig",
    "SchedulerClusterConfig",
    "SlurmClusterConfig",
    "config_error",
    "load_config",
    "parse_config",
]

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalClusterConfig(_Strict):
    """A ``distributed.LocalCluster`` on this machine.

    ``memory_limit`` is per worker ("4GiB", "auto", or 0 for none); ``local_directory`` is
    where workers spill to disk. ``worker_log_level`` is what worker processes print: a failed
    task already reaches the caller as its exception (the CLI's one-line error), so by default
    workers stay quiet; set "warning" to see spilling and memory warnings.
    """

    kind: Literal["local"] = "local"
    n_workers: int | None = Field(None, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    processes: bool = True
    memory_limit: str | int = "auto"
    local_directory: str | None = None
    dashboard_address: str | None = None
    worker_log_level: Literal["debug", "info", "warning", "error", "critical"] = "critical"


class AdaptConfig(_Strict):
    """Adaptive scaling bounds, in jobs."""

    minimum_jobs: int = Field(0, ge=0)
    maximum_jobs: int = Field(1, ge=1)


class SlurmClusterConfig(_Strict):
    """Workers as SLURM jobs through ``dask_jobqueue.SLURMCluster``.

    ``cores`` and ``memory`` are per job; ``processes`` worker processes share them. Either
    ``jobs`` (fixed scale) or ``adapt`` is used.
    """

    kind: Literal["slurm"]
    cores: int = Field(ge=1)
    memory: str
    processes: int = Field(1, ge=1)
    walltime: str = "01:00:00"
    queue: str | None = None
    account: str | None = None
    job_name: str = "bigpaint-worker"
    job_extra_directives: list[str] = Field(default_factory=list)
    job_script_prologue: list[str] = Field(default_factory=list)
    worker_extra_args: list[str] = Field(default_factory=list)
    interface: str | None = None
    local_directory: str | None = None
    log_directory: str | None = None
    python: str | None = None
    jobs: int = Field(1, ge=0)
    adapt: AdaptConfig | None = None
    scheduler_options: dict[str, Any] = Field(default_factory=dict)


class LocalCudaClusterConfig(_Strict):
    """One worker per GPU through ``dask_cuda.LocalCUDACluster`` (``pip install bigpaint[gpu]``)."""

    kind: Literal["local-cuda"]
    CUDA_VISIBLE_DEVICES: str | None = None
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str | int = "auto"
    device_memory_limit: str | None = None
    rmm_pool_size: str | None = None
    local_directory: str | None = None


class SchedulerClusterConfig(_Strict):
    """A scheduler that is already running (started by a batch script, see ``deploy/``).

    Give ``scheduler_file`` (the JSON file ``dask scheduler --scheduler-file`` writes) or
    ``address`` (``tcp://host:8786``). bigpaint connects a client and waits for
    ``wait_for_workers`` workers; it neither starts nor stops the scheduler or its workers.
    """

    kind: Literal["scheduler"]
    scheduler_file: str | None = None
    address: str | None = None
    wait_for_workers: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _one_target(self) -> SchedulerClusterConfig:
        if (self.scheduler_file is None) == (self.address is None):
            raise ValueError("give exactly one of scheduler_file or address")
        return self


ClusterConfig = Annotated[
    LocalClusterConfig | SlurmClusterConfig | LocalCudaClusterConfig | SchedulerClusterConfig,
    Field(discriminator="kind"),
]


def _known_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, f in model.model_fields.items():
        keys.add(name)
        ann = f.annotation
        for sub in getattr(ann, "__args__", (ann,)):
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                keys |= _known_keys(sub)
    return keys


_ALL_KEYS: set[str] = set()
for _m in (
    LocalClusterConfig,
    SlurmClusterConfig,
    LocalCudaClusterConfig,
    SchedulerClusterConfig,
    AdaptConfig,
):
    _ALL_KEYS |= _known_keys(_m)


_KINDS = ("local", "slurm", "local-cuda", "scheduler")


def config_error(
    exc: ValidationError, source: str, extra_keys: set[str] | None = None
) -> ConfigError:
    """Turn a pydantic ValidationError into a one-line :class:`ConfigError`."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if p not in _KINDS]
    where = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        key = loc[-1] if loc else "?"
        hint = difflib.get_close_matches(key, sorted(_ALL_KEYS | (extra_keys or set())), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        return ConfigError(f"{source}: unknown key {where!r}{did}; remove or correct it")
    if err["type"] == "union_tag_invalid":
        return ConfigError(
            f"{source}: {where}.kind must be one of {', '.join(map(repr, _KINDS))}, "
            f"got {err.get('input', {}).get('kind')!r}"
        )
    return ConfigError(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})")


def parse_config(model: type[M], data: Mapping[str, Any] | None, source: str = "config") -> M:
    """Validate a mapping against ``model`` with a one-line error."""
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise config_error(exc, source, _known_keys(model)) from None


def load_config(model: type[M], path: str | Path, overrides: Mapping[str, Any] | None = None) -> M:
    """Read a YAML file into ``model``, applying ``overrides`` (dotted keys) on top.

    Parameters
    ----------
    model : pydantic model class
    path : str or Path
        YAML file.
    overrides : mapping, optional
        ``{"cluster.n_workers": 4}``: values that replace the file's (CLI flags).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; give the path of a YAML config")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(model, data, str(path))
