"""Typed configuration: pydantic models read from YAML, with one-line errors.

Unknown keys are refused (a typo must not be silently ignored) and the error names the key,
the file, and the closest valid key. A key given twice in one mapping is refused with both
line numbers (YAML itself lets the last one win, silently). A file that is not text (a
program, an archive) is refused as such rather than fed to the YAML parser.

Sizes (``memory_limit``, a SLURM job's ``memory``) are checked when the config is read:
junk is refused, and so is a worker memory limit below :data:`MIN_WORKER_MEMORY`, which no
worker could run a task under (it would pause for ever, and the job hang with no output).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bigpaint.errors import ConfigError

__all__ = [
    "MIN_WORKER_MEMORY",
    "AdaptConfig",
    "BlockEdges",
    "ClusterConfig",
    "LocalClusterConfig",
    "LocalCudaClusterConfig",
    "SchedulerClusterConfig",
    "SlurmClusterConfig",
    "config_error",
    "format_bytes",
    "load_config",
    "parse_config",
    "parse_size",
    "read_yaml",
]

M = TypeVar("M", bound=BaseModel)

#: Smallest memory limit of a Dask worker, in bytes. A worker process holds about 200 MiB
#: (Python, numpy, zarr, distributed, measured with bigpaint's Field modules loaded) before
#: it runs a task, and pauses at 80 % of its limit: under 512 MiB it has no room for a task.
MIN_WORKER_MEMORY = 512 << 20


def _edge_per_axis(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value, value)  # one edge for every axis, as the CLI's --chunks N
    return tuple(value) if isinstance(value, list) else value


#: A job's ``chunks`` key: block edges in voxels, one integer (every axis) or three; the
#: planner of the job checks them against its grid.
BlockEdges = Annotated[tuple[int, ...] | None, BeforeValidator(_edge_per_axis)]


def format_bytes(n: float, *, round_up: bool = False) -> str:
    """``n`` bytes as text with a binary unit (``512 MiB``); ``round_up`` never shows less
    than ``n`` (for a minimum the reader should give)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            break
        n /= 1024
    if unit == "B":
        return f"{math.ceil(n) if round_up else int(n)} B"
    if round_up:
        return f"{math.ceil(n * 100) / 100:g} {unit}"
    return f"{n:.3g} {unit}"


def parse_size(value: str | int | float, what: str) -> int:
    """A size in bytes from ``2GiB``, ``512MB``, ``1e9`` or an integer; one-line ConfigError
    for junk or a size that is not positive.

    Parameters
    ----------
    value : str or int or float
    what : str
        Name of the option or key, for the message.
    """
    import dask.utils

    try:
        n = int(dask.utils.parse_bytes(value) if isinstance(value, str) else value)
        ok = not isinstance(value, bool) and n > 0
    except (ValueError, TypeError, OverflowError):
        ok = False
    if not ok:
        raise ConfigError(
            f"{what} must be a positive size like 2GiB, 512MB or 1000000000 (bytes), got {value!r}"
        )
    return n


def _worker_memory(value: str | int, what: str, per: int = 1, limit: bool = True) -> str | int:
    """Check a worker memory limit: ``auto``, 0 (no limit; only when ``limit``) or a size of
    at least :data:`MIN_WORKER_MEMORY` per worker process (``per`` processes share it)."""
    if limit and (value == "auto" or (isinstance(value, int) and value == 0)):
        return value
    n = parse_size(value, what)
    if n // per < MIN_WORKER_MEMORY:
        share = f" shared by {per} worker processes" if per > 1 else ""
        raise ValueError(
            f"{what} {value!r}{share} leaves {format_bytes(n // per)} per worker, below the "
            f"{format_bytes(MIN_WORKER_MEMORY)} a worker needs to run any task (it holds about "
            "200 MiB before its first task and pauses at 80 % of its limit); give at least "
            f"{format_bytes(MIN_WORKER_MEMORY * per, round_up=True)}"
            + (", 'auto', or 0 for no limit" if limit else "")
        )
    return value


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

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, v: str | int) -> str | int:
        return _worker_memory(v, "memory_limit")


class AdaptConfig(_Strict):
    """Adaptive scaling bounds, in jobs.

    At least one job: a command waits for its first worker before it submits any work, and
    with none adaptive scaling would never start one. The jobs end with the command.
    """

    minimum_jobs: int = 1
    maximum_jobs: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> AdaptConfig:
        if self.minimum_jobs < 1:
            raise ValueError(
                f"minimum_jobs {self.minimum_jobs} leaves no worker for the command to start "
                "on; give at least 1 (the jobs end with the command)"
            )
        if self.maximum_jobs < self.minimum_jobs:
            raise ValueError(
                f"maximum_jobs {self.maximum_jobs} is below minimum_jobs {self.minimum_jobs}; "
                "raise maximum_jobs"
            )
        return self


class SlurmClusterConfig(_Strict):
    """Workers as SLURM jobs through ``dask_jobqueue.SLURMCluster``.

    ``cores`` and ``memory`` are per job; ``processes`` worker processes share them. Either
    ``jobs`` (fixed scale) or ``adapt`` is used. ``start_timeout`` is how long, in seconds,
    bigpaint waits for the first worker to join before it gives up with the worker jobs'
    states from ``squeue`` (a job the partition has no room for stays PENDING for ever).
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
    start_timeout: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _memory_per_worker(self) -> SlurmClusterConfig:
        _worker_memory(self.memory, "memory", per=self.processes, limit=False)
        return self


class LocalCudaClusterConfig(_Strict):
    """One worker per GPU through ``dask_cuda.LocalCUDACluster`` (``pip install bigpaint[gpu]``)."""

    kind: Literal["local-cuda"]
    CUDA_VISIBLE_DEVICES: str | None = None
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str | int = "auto"
    device_memory_limit: str | None = None
    rmm_pool_size: str | None = None
    local_directory: str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, v: str | int) -> str | int:
        return _worker_memory(v, "memory_limit")


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
    if err["type"] == "value_error":  # a validator's own message names the value and fix
        return ConfigError(f"{source}: {where}: {err['msg'].removeprefix('Value error, ')}")
    return ConfigError(f"{source}: {where}: {err['msg']} (got {err.get('input')!r})")


def parse_config(model: type[M], data: Mapping[str, Any] | None, source: str = "config") -> M:
    """Validate a mapping against ``model`` with a one-line error."""
    try:
        return model.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise config_error(exc, source, _known_keys(model)) from None


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"key {key!r} given twice")
        self.key, self.first, self.again = key, first, again


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping.

    Keys brought in by a merge (``<<: *anchor``) may be overridden, as YAML intends; keys
    written out twice may not.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader refuses it itself
                continue
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely (no code runs), refusing what is not a YAML text file and keys
    given twice, with one-line :class:`ConfigError` messages naming the file and line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "NUL byte")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{path} is not a YAML text file (it holds binary data, e.g. a program or an "
            "archive); give the path of a YAML config"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config file {path} ({exc.strerror or exc}); check the path"
        ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no code runs
    except _DuplicateKeyError as exc:
        raise ConfigError(
            f"{path}: key {exc.key!r} is given twice in one mapping (lines {exc.first} and "
            f"{exc.again}); keep one of them"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None


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
    data = read_yaml(path) or {}
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
