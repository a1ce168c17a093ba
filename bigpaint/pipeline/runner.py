"""Run a pipeline stage by stage, skipping finished stages and resuming a killed one.

Plan apart from execution: :func:`plan_pipeline` checks the whole config before anything
runs (kinds, params, inputs, references, what the run directory already holds) and gives
each stage a hash of its kind, its params, the hashes of the stages it reads and a
fingerprint of its external inputs. :func:`run_pipeline` executes the plan.

Records live in ``OUT/_pipeline/<name>.json``: ``state`` is ``started`` while a stage runs
and ``finished`` after, with the stage's hash, wall time and headline numbers. A stage whose
record is finished with the same hash (and whose outputs exist) is skipped. A stage that was
started with the same hash (killed) runs again in place: Field-writing stages skip their
finished blocks, training continues from its state, the others start the stage over. A
stage recorded with another hash, or a stage folder the pipeline did not write, is refused
before any work unless ``overwrite`` is given (then that folder is replaced).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigpaint.config import ClusterConfig, load_config
from bigpaint.errors import ConfigError, FieldExistsError
from bigpaint.outputs import OWNER_MARK, check_apart, owned_dir, remove_owned, writing
from bigpaint.pipeline.config import (
    PipelineConfig,
    check_names,
    closest,
    get_dotted,
    parse_reference,
    resolve_out,
    set_dotted,
)
from bigpaint.pipeline.stages import STAGE_KINDS, StageContext, StageKind
from bigpaint.progress import heartbeat

logger = logging.getLogger(__name__)

__all__ = ["PlannedStage", "load_pipeline", "plan_pipeline", "run_pipeline", "stage_status"]

RECORDS = "_pipeline"


@dataclass
class PlannedStage:
    """A stage ready to run.

    Attributes
    ----------
    index : int
        1-based position.
    name, kind : str
    hash : str
        Of kind, params, upstream hashes and external input fingerprints.
    config : object
        The validated config its kind's ``run`` takes.
    dir : Path
    outputs : tuple of str
    status : {"done", "resume", "run", "redo"}
        ``redo``: recorded with another hash or foreign, replaced (``overwrite``).
    """

    index: int
    name: str
    kind: StageKind
    hash: str
    config: Any
    dir: Path
    outputs: tuple[str, ...]
    status: str = "run"
    record: dict[str, Any] | None = field(default=None, repr=False)


def load_pipeline(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML (``overrides``: dotted keys, e.g. ``{"out": "runs/x"}``)."""
    return load_config(PipelineConfig, path, overrides)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fingerprint(path: str) -> dict[str, Any]:
    """What identifies an external input: a Field's finish time, else sizes and mtimes."""
    p = Path(path)
    marker = p / "zarr.json"
    if marker.is_file():
        try:
            attrs = json.loads(marker.read_text()).get("attributes", {})
        except ValueError:
            attrs = {}
        if "bigpaint_finished" in attrs:
            return {"path": path, "finished": attrs["bigpaint_finished"]}
    if p.is_dir() and not marker.is_file():  # e.g. a checkpoint: its files, one level deep
        files = sorted(f for f in p.iterdir() if f.is_file())
        return {"path": path, "files": [(f.name, *_stat(f)) for f in files]}
    return {"path": path, "stat": _stat(marker if marker.is_file() else p)}


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"state": "damaged", "hash": None}


def _write_record(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def plan_pipeline(
    cfg: PipelineConfig, *, source: str = "pipeline", overwrite: bool = False
) -> list[PlannedStage]:
    """Check a pipeline and decide, per stage, whether it is done, resumed, run or redone.

    Raises
    ------
    ConfigError
        Unknown kind, a bad param, an input that does not exist, a reference to a stage that
        does not exist or runs later, or to an output that stage does not write.
    FieldExistsError
        A stage folder holds another configuration's results (or something the pipeline did
        not write) and ``overwrite`` is false.
    """
    check_names(cfg, source)
    run_dir = resolve_out(cfg.out)
    names = [s.name for s in cfg.stages]
    produced: dict[str, tuple[str, ...]] = {}
    hashes: dict[str, str] = {}
    planned: list[PlannedStage] = []
    externals: list[str] = []
    for i, st in enumerate(cfg.stages):
        where = f"{source}: stage {st.name!r} ({st.kind})"
        kind = STAGE_KINDS.get(st.kind)
        if kind is None:
            raise ConfigError(
                f"{source}: stage {st.name!r} has unknown kind {st.kind!r}"
                f"{closest(st.kind, list(STAGE_KINDS))}; known kinds: {', '.join(STAGE_KINDS)}"
            )
        for key in kind.written:
            if get_dotted(st.params, key) is not None:
                raise ConfigError(
                    f"{where}: params.{key} is set by the pipeline (the stage writes into "
                    f"{cfg.out}/{st.name}/); remove it"
                )
        params = dict(st.params)
        _refuse_stray_references(params, kind, where)
        upstream: dict[str, str] = {}
        external: list[dict[str, Any]] = []
        for key in kind.inputs:
            value = get_dotted(params, key)
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            resolved = []
            for v in values:
                if not isinstance(v, str):
                    raise ConfigError(f"{where}: params.{key} must be a path, got {v!r}")
                if v.startswith("pretrained:"):  # a painter (or its baseline): its files
                    from bigpaint.errors import BigpaintError
                    from bigpaint.painters.pretrained import resolve_checkpoint
                    from bigpaint.stats.bias_model import resolve_bias_model

                    try:
                        found = resolve_bias_model(v) if "/" in v else resolve_checkpoint(v)
                    except BigpaintError as exc:
                        raise type(exc)(f"{where}: params.{key}: {exc}") from None
                    external.append(_fingerprint(str(found)))
                    resolved.append(v)
                    continue
                ref = parse_reference(v, f"{where}: params.{key}")
                if ref is None:
                    if not Path(v).exists():
                        raise ConfigError(
                            f"{where}: input {v!r} (params.{key}) does not exist; give an "
                            "existing path or '@stage/output' of an earlier stage"
                        )
                    external.append(_fingerprint(v))
                    resolved.append(v)
                    continue
                if ref.stage not in names:
                    raise ConfigError(
                        f"{where}: params.{key} refers to stage {ref.stage!r}, which does not "
                        f"exist{closest(ref.stage, names)}"
                    )
                if ref.stage not in produced:
                    raise ConfigError(
                        f"{where}: params.{key} reads {ref} but stage {ref.stage!r} runs "
                        f"{'later' if ref.stage != st.name else 'here'}; move {ref.stage!r} "
                        f"before {st.name!r}"
                    )
                if ref.output not in produced[ref.stage]:
                    raise ConfigError(
                        f"{where}: stage {ref.stage!r} writes no {ref.output!r}"
                        f"{closest(ref.output, list(produced[ref.stage]))}; it writes "
                        f"{', '.join(produced[ref.stage])}"
                    )
                upstream[ref.stage] = hashes[ref.stage]
                resolved.append(str(run_dir / ref.stage / ref.output))
            params = set_dotted(params, key, resolved if isinstance(value, list) else resolved[0])
        if kind.after_all:
            upstream = dict(hashes)
        h = _digest(
            {"kind": st.kind, "params": st.params, "upstream": upstream, "external": external}
        )
        ctx = StageContext(st.name, run_dir / st.name, where, lambda _m: None, run_dir=run_dir)
        config = kind.validate(params, ctx)
        outputs = kind.outputs(config)
        produced[st.name] = outputs
        hashes[st.name] = h
        planned.append(PlannedStage(i + 1, st.name, kind, h, config, ctx.dir, outputs))
        externals.extend(e["path"] for e in external)
    _decide(planned, run_dir, overwrite)
    check_apart(
        {f"stage folder {p.name!r}": p.dir for p in planned if p.status == "redo"},
        {f"input {i + 1}": e for i, e in enumerate(externals)},
    )
    return planned


def _refuse_stray_references(params: Any, kind: StageKind, where: str, key: str = "") -> None:
    """A ``@stage/output`` in a parameter the kind does not read as an input would reach the
    stage unresolved (and fail only when it runs): refuse it while planning."""
    if isinstance(params, dict):
        for k, v in params.items():
            _refuse_stray_references(v, kind, where, f"{key}.{k}" if key else str(k))
    elif isinstance(params, list):
        for v in params:
            _refuse_stray_references(v, kind, where, key)
    elif isinstance(params, str) and params.startswith("@") and key not in kind.inputs:
        raise ConfigError(
            f"{where}: params.{key} is {params!r}, but a {kind.kind} stage reads "
            f"'@stage/output' only in {', '.join(kind.inputs) or 'no parameter'}; give a path"
        )


def _decide(planned: list[PlannedStage], run_dir: Path, overwrite: bool) -> None:
    for ps in planned:
        rec = _read_record(run_dir / RECORDS / f"{ps.name}.json")
        ps.record = rec
        folder_used = ps.dir.exists() and any(f.name != OWNER_MARK for f in ps.dir.iterdir())
        ours = rec is not None or (ps.dir / OWNER_MARK).is_file()
        if folder_used and not ours:
            raise FieldExistsError(
                f"stage {ps.name!r}: {ps.dir} holds files this pipeline did not write; bigpaint "
                "never deletes them: move them away, or choose another out"
            )
        if rec is not None and rec.get("hash") == ps.hash:
            complete = all((ps.dir / o).exists() for o in ps.outputs)
            ps.status = "done" if rec.get("state") == "finished" and complete else "resume"
        elif rec is not None or folder_used:
            if not overwrite:
                what = (
                    "was run with a different configuration or inputs"
                    if rec is not None
                    else "holds the results of an unrecorded earlier run"
                )
                raise FieldExistsError(
                    f"stage {ps.name!r}: {ps.dir} {what}; pass --overwrite to redo it (and the "
                    "stages that read it), or choose another out"
                )
            ps.status = "redo"
        else:
            ps.status = "run"


def _finite(summary: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers as strict JSON: NaN and infinities become None."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()
    }


def _say(msg: str) -> None:
    logger.info("[run] %s", msg)


@contextlib.contextmanager
def _lazy_cluster(cfg: ClusterConfig | None, use_current: bool) -> Iterator[Callable[[], None]]:
    """Yield ``ensure()``, which starts the cluster the first time it is called."""
    stack = contextlib.ExitStack()
    started: list[bool] = []

    def ensure() -> None:
        if use_current or started:
            return
        from bigpaint.cluster import connect

        _say("starting the Dask cluster")
        stack.enter_context(connect(cfg))
        started.append(True)

    with stack:
        yield ensure


def run_pipeline(
    cfg: PipelineConfig,
    *,
    source: str = "pipeline",
    overwrite: bool = False,
    cluster: ClusterConfig | None = None,
    use_current_client: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every stage of ``cfg`` in order; finished stages are skipped.

    Parameters
    ----------
    cfg : PipelineConfig
    source : str
        Name of the config in messages (its path).
    overwrite : bool
        Redo stages whose folder holds another configuration's results.
    cluster : ClusterConfig, optional
        Replaces ``cfg.cluster``.
    use_current_client : bool
        Run the cluster stages on the current Dask client (or local threads) instead of
        starting ``cfg.cluster``.
    log : callable, optional
        ``log(str)`` for stage lines (default: the ``bigpaint.pipeline.runner`` logger at
        INFO; block progress goes to ``bigpaint.progress``).

    Returns
    -------
    list of dict
        The finished record of every stage (``name``, ``kind``, ``hash``, ``seconds``,
        ``summary``, ``outputs``, ``dir``, ``skipped``).
    """
    with writing({"pipeline out": resolve_out(cfg.out)}):
        return _run(cfg, source, overwrite, cluster, use_current_client, log or _say)


def _run(
    cfg: PipelineConfig,
    source: str,
    overwrite: bool,
    cluster: ClusterConfig | None,
    use_current_client: bool,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Plan and run the stages, under the run directory's lock."""
    planned = plan_pipeline(cfg, source=source, overwrite=overwrite)
    run_dir = resolve_out(cfg.out)
    (run_dir / RECORDS).mkdir(parents=True, exist_ok=True)
    n = len(planned)
    for ps in planned:
        logger.debug("plan: %s (%s) %s, hash %s, dir %s", ps.name, ps.kind.kind, ps.status,
                     ps.hash[:12], ps.dir)  # fmt: skip
    done: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    with _lazy_cluster(cluster or cfg.cluster, use_current_client) as ensure_cluster:
        for ps in planned:
            head = f"{ps.index}/{n} {ps.name} ({ps.kind.kind})"
            rec_path = run_dir / RECORDS / f"{ps.name}.json"
            if ps.status == "done":
                say(f"{head}: finished earlier, skipped")
                done.append({**(ps.record or {}), "skipped": True})
                continue
            if ps.status == "redo" and ps.dir.exists() and not remove_owned(ps.dir):
                shutil.rmtree(ps.dir)  # a folder recorded by a pipeline from before the mark
            owned_dir(ps.dir, purpose=f"results of pipeline stage {ps.name!r}")
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            _write_record(
                rec_path,
                {"name": ps.name, "kind": ps.kind.kind, "hash": ps.hash, "state": "started",
                 "started_at": started},
            )  # fmt: skip
            if ps.kind.cluster:
                ensure_cluster()
            verb = "resuming" if ps.status == "resume" else "start"
            say(f"{head}: {verb}")
            t0 = time.perf_counter()
            # a line at least every progress interval in batch logs, blocks counted or not
            with heartbeat(f"[run] {head}") as mark:

                def stage_log(m: str, _n: str = ps.name) -> None:
                    say(f"  {_n}: {m}")
                    mark()

                ctx = StageContext(
                    ps.name,
                    ps.dir,
                    f"stage {ps.name!r} ({ps.kind.kind})",
                    stage_log,
                    previous=list(done),
                    run_dir=run_dir,
                )
                summary = _finite(ps.kind.run(ps.config, ctx))
            seconds = time.perf_counter() - t0
            missing = [o for o in ps.outputs if not (ps.dir / o).exists()]
            if missing:
                raise ConfigError(
                    f"stage {ps.name!r} finished without writing {', '.join(missing)}; "
                    "this is a bug in its kind, please report it"
                )
            record = {
                "name": ps.name,
                "kind": ps.kind.kind,
                "hash": ps.hash,
                "state": "finished",
                "started_at": started,
                "seconds": seconds,
                "summary": summary,
                "outputs": list(ps.outputs),
                "dir": str(ps.dir),
            }
            _write_record(rec_path, record)
            say(f"{head}: done in {seconds:.1f} s")
            done.append({**record, "skipped": False})
    say(f"all {n} stages finished in {time.perf_counter() - t_all:.1f} s; run directory {run_dir}")
    return done


def stage_status(cfg: PipelineConfig, *, source: str = "pipeline") -> list[tuple[str, str, str]]:
    """``(name, kind, status)`` of every stage without running anything (``--dry-run``)."""
    return [
        (p.name, p.kind.kind, p.status) for p in plan_pipeline(cfg, source=source, overwrite=True)
    ]
