"""The training loop: seeds, device, resumable state, metrics log, validation by statistic.

:func:`train` runs one :class:`bigpaint.train.config.TrainConfig`:

1. Seeds torch and the samplers from ``run.seed``; picks the device (:func:`select_device`:
   CUDA when present, with bfloat16 autocast when supported; else CPU with ``run.threads``).
2. Builds the painter from the registry, opens the Fields (:class:`TrainingData`: region
   split, normalizations fitted on the training region) and the family's objective
   (:mod:`bigpaint.train.objectives`: regression, WGAN-GP, DCGAN + encoder).
   ``run.init_from`` starts from a checkpoint's weights (same architecture, checked).
3. Resumes from ``run.out/state.pt`` when it exists (same config required): modules,
   optimizers, schedulers, step, torch and sampler RNG states. A run stopped and resumed
   ends with exactly the weights of an uninterrupted run (tested).
4. Loops until ``run.max_steps`` (or ``run.max_time`` seconds): every ``log_every`` steps a
   row of ``metrics.csv`` (step, elapsed seconds, phase, learning rate, losses); every
   ``val_every`` steps the validation loss and the statistic of the painted validation cube
   (:func:`bigpaint.train.validate.validate`), keeping the best as ``best.painter``; every
   ``checkpoint_every`` steps (and at the end) ``state.pt`` and ``last.painter``. State and
   checkpoints are written to temporary names and renamed, so a killed run resumes from the
   last complete state. With ``run.progress``, the same metrics are logged every
   ``log_every`` steps and each validation once (:mod:`bigpaint.progress`: a bar instead
   of the step lines when stderr is a terminal).

Checkpoints record their provenance: the config, the input and target Fields (path, kind,
box, redshift, cosmology and their own provenance), step, elapsed time, device, torch version
and the validation metrics. Each also gets a model card (:mod:`bigpaint.train.card`) when the
input Fields record what a card needs (one kind, redshift, cosmology and mass assignment), so
painting checks a user's own painter as it checks a shipped one.

Why hand-written: Lightning-style trainers would own the loop that the WGAN critic schedule,
the resumable sampler state and the region-split validation need; this is ~200 lines.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from bigpaint.errors import ConfigError
from bigpaint.outputs import writing
from bigpaint.progress import Progress
from bigpaint.train.config import TrainConfig

__all__ = ["TrainResult", "select_device", "train"]

STATE = "state.pt"
METRICS = "metrics.csv"
#: What a resume state holds (written by the loop, checked when read back).
_STATE_KEYS = ("config", "objective", "sampler_train", "sampler_val", "rng", "best_score")
VAL_KEYS = ("val_loss", "score", "pk_logratio", "r_c", "T")

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    out : Path
        Run directory.
    steps : int
        Painter updates done in total (including resumed ones).
    best_score : float
        Best validation score (lower is better; inf when never validated).
    best, last : Path
        Checkpoint directories.
    metrics : Path
        The CSV log.
    elapsed : float
        Seconds this call ran.
    device : str
    history : list of dict
        The validation rows of this call.
    """

    out: Path
    steps: int
    best_score: float
    best: Path
    last: Path
    metrics: Path
    elapsed: float
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)


def select_device(
    preference: str = "auto", *, amp: bool = True
) -> tuple[torch.device, torch.dtype | None]:
    """The device to train on and the autocast dtype (None: full precision).

    ``"auto"``: CUDA when a device is visible, else CPU. Mixed precision is bfloat16 autocast
    on CUDA devices that support it (no loss scaling needed); CPU trains in float32.
    """
    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    use_cuda = preference == "cuda" or (preference == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu"), None
    dev = torch.device("cuda")
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else None
    return dev, dtype


def _comparable(cfg: TrainConfig) -> dict[str, Any]:
    d = cfg.model_dump(mode="json")
    for k in (
        "max_steps",
        "max_time",
        "resume",
        "progress",
        "log_every",
        "val_every",
        "checkpoint_every",
        "threads",
    ):
        d["run"].pop(k, None)
    return d


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def _provenance(cfg: TrainConfig, data: Any, extra: dict[str, Any]) -> dict[str, Any]:
    def field_info(urls: list[str], metas: list[Any]) -> list[dict[str, Any]]:
        out = []
        for url, m in zip(urls, metas, strict=False):
            out.append(
                {
                    "url": url,
                    "kind": m.kind,
                    "units": m.units,
                    "box_size": list(m.box_size),
                    "redshift": m.redshift,
                    "cosmology": None if m.cosmology is None else m.cosmology.model_dump(),
                    "provenance": json.loads(json.dumps(m.provenance, default=str)),
                    "mass_assignment": None
                    if getattr(m, "mass_assignment", None) is None
                    else m.mass_assignment.model_dump(),
                }
            )
        return out

    return {
        "trained_with": "bigpaint train",
        "config": cfg.model_dump(mode="json"),
        "inputs": field_info(cfg.data.inputs, data.input_meta),
        "targets": field_info(cfg.data.targets, data.target_meta),
        "more_boxes": [
            {
                "inputs": field_info(b.inputs, mi),
                "targets": field_info(b.targets, mt),
            }
            for b, (mi, mt) in zip(cfg.data.more_boxes, data.more_meta, strict=True)
        ],
        "grid": list(data.shape),
        "validation_region": {"origin": list(data.validation.origin), "size": data.validation.size},
        "torch_version": torch.__version__,
        **extra,
    }


class _MetricsLog:
    """``metrics.csv`` with a fixed header; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, names: tuple[str, ...], resume_step: int | None) -> None:
        self.path = path
        self.header = ["step", "elapsed_s", "phase", "lr", *names, *VAL_KEYS]
        rows: list[dict[str, str]] = []
        if resume_step is not None and path.exists():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, self.header)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, self.header, extrasaction="ignore")
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _metric_text(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    """``loss 0.1234, lr 0.0002, ...`` for the keys of ``row`` that are present."""
    return ", ".join(
        f"{k} {row[k]:.4g}" if isinstance(row[k], float) else f"{k} {row[k]}"
        for k in keys
        if k in row
    )


def _load_state(path: Path) -> dict[str, Any]:
    """The resume state of a run (tensors and plain data only: ``weights_only``), or a
    one-line DamagedStoreError naming the file and the fix."""
    from bigpaint.errors import DamagedStoreError, storage_error

    fix = (
        "delete it to restart the run from step 0 (its checkpoints stay), or give another "
        "run.out (--out)"
    )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise storage_error(exc, path, doing="read") from None
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ...
        raise DamagedStoreError(
            f"the resume state {path} cannot be read ({type(exc).__name__}): it is damaged; {fix}"
        ) from None
    missing = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise DamagedStoreError(
            f"the resume state {path} is not a bigpaint training state (it lacks {missing[0]!r}); "
            f"{fix}"
        )
    return state


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig | dict[str, Any]) -> TrainResult:
    """Train one painter as configured (see the module docstring).

    Parameters
    ----------
    cfg : TrainConfig or mapping
        A mapping is validated (one-line :class:`ConfigError` on a bad key or value).

    Returns
    -------
    TrainResult
    """
    from bigpaint.config import parse_config

    if not isinstance(cfg, TrainConfig):
        cfg = parse_config(TrainConfig, cfg, "train config")
    data_paths = [*cfg.data.inputs, *cfg.data.targets]
    data_paths += [p for b in cfg.data.more_boxes for p in (*b.inputs, *b.targets)]
    with writing(
        {"run.out": cfg.run.out}, {f"data file {i + 1}": p for i, p in enumerate(data_paths)}
    ):
        return _train(cfg)


def _train(cfg: TrainConfig) -> TrainResult:
    """The training run itself, under the run directory's lock."""
    from bigpaint.painters import build_painter, save_checkpoint
    from bigpaint.train.objectives import make_objective
    from bigpaint.train.sampler import TrainingData

    run = cfg.run
    device, amp = select_device(run.device, amp=run.amp)
    if device.type == "cpu" and run.threads:
        torch.set_num_threads(run.threads)
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE
    resume = run.resume and state_path.exists()
    saved: dict[str, Any] | None = None
    if resume:
        saved = _load_state(state_path)
        if saved["config"] != _comparable(cfg):
            raise ConfigError(
                f"{out} holds a different training run (its config differs); choose another "
                "run.out, delete the directory, or set run.resume: false"
            )
    torch.manual_seed(run.seed)
    painter = build_painter(cfg.family, cfg.model)
    if run.init_from and saved is None:
        from bigpaint.painters import load_weights

        load_weights(painter, run.init_from)  # normalizations: set from the config next
    data = TrainingData.open(cfg.data, painter, seed=run.seed)
    if run.channels_last and painter.ndim == 3:
        painter.to(device, memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's Module.to overloads omit memory_format
    else:
        painter.to(device)
    objective = make_objective(painter, cfg, data, device, amp)
    best_score = float("inf")
    if saved is not None:
        objective.load_state_dict(saved["objective"])
        data.train.set_state(saved["sampler_train"])
        data.val.set_state(saved["sampler_val"])
        _set_rng_state(saved["rng"], device)
        best_score = float(saved["best_score"])
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log = _MetricsLog(out / METRICS, objective.metric_names, objective.step if saved else None)
    best_path, last_path = out / "best.painter", out / "last.painter"
    t0 = time.perf_counter()
    history: list[dict[str, Any]] = []
    name = f"train {cfg.family}"
    prog = Progress(
        name,
        run.max_steps,
        unit="steps",
        enabled=run.progress,
        initial=objective.step,
        heartbeat=False,
    )
    logger.debug("%s: %s, autocast %s, from step %d", name, device, amp, objective.step)

    def provenance(metrics: dict[str, Any]) -> dict[str, Any]:
        extra = {
            "step": objective.step,
            "elapsed_s": time.perf_counter() - t0,
            "device": str(device),
            "seed": run.seed,
            "validation": {k: v for k, v in metrics.items() if k != "spectra"},
        }
        return _provenance(cfg, data, extra)

    saved_step = objective.step if saved is not None else -1
    no_card: list[str] = []

    def save(path: Path, metrics: dict[str, Any]) -> None:
        """A checkpoint with its model card, when the data record what a card needs."""
        from bigpaint.train.card import card_name, training_card

        prov = provenance(metrics)
        card, why = training_card(painter.metadata(prov), card_name(run.out))
        if card is None and not no_card:
            no_card.append(why)
            logger.info("%s: checkpoints get no model card: %s", name, why)
        save_checkpoint(painter, path, provenance=prov, card=card)

    def checkpoint(metrics: dict[str, Any]) -> None:
        nonlocal saved_step
        saved_step = objective.step
        save(last_path, metrics)
        state = {
            "config": _comparable(cfg),
            "objective": objective.state_dict(),
            "sampler_train": data.train.state(),
            "sampler_val": data.val.state(),
            "rng": _rng_state(device),
            "best_score": best_score,
        }
        _save_state(state_path, state)

    last_metrics: dict[str, Any] = {}
    with prog:  # closed with its final line, or "stopped at" on an error
        while objective.step < run.max_steps:
            phase = objective.phase
            metrics = objective.train_step()
            step = objective.step
            prog.update(1, loss=f"{metrics['loss']:.4g}", phase=phase)
            row = {
                "step": step,
                "elapsed_s": time.perf_counter() - t0,
                "phase": phase,
                "lr": objective.lr,
                **metrics,
            }
            final = step >= run.max_steps or (
                run.max_time is not None and time.perf_counter() - t0 >= run.max_time
            )
            if step % run.log_every == 0 or final:
                prog.report(_metric_text(row, ("phase", "lr", *metrics)))
            if step % run.val_every == 0 or final:
                v = objective.validate()
                v["val_loss"] = objective.val_loss(run.val_batches)
                objective.after_validation(float(v["score"]))
                row.update({k: v[k] for k in VAL_KEYS if k in v})
                history.append({k: val for k, val in row.items()})
                last_metrics = v
                best = v["score"] < best_score or not best_path.exists()
                if best:
                    best_score = min(best_score, float(v["score"]))
                    save(best_path, v)
                if prog.mode != "off":
                    note = " (best so far)" if best else ""
                    text = _metric_text(row, VAL_KEYS)
                    logger.info("%s: validation at step %d: %s%s", name, step, text, note)
                log.write(row)
            elif step % run.log_every == 0:
                log.write(row)
            if step % run.checkpoint_every == 0 or final:
                checkpoint(last_metrics)
            if final:
                break
    if saved_step != objective.step or not last_path.exists():
        checkpoint(last_metrics)
    return TrainResult(
        out=out,
        steps=objective.step,
        best_score=best_score,
        best=best_path,
        last=last_path,
        metrics=out / METRICS,
        elapsed=time.perf_counter() - t0,
        device=str(device),
        history=history,
    )
