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
from typing import TYPE_CHECKING, Any

import torch
import yaml

from bigpaint.errors import ConfigError
from bigpaint.outputs import writing
from bigpaint.progress import Progress
from bigpaint.train.config import TrainConfig

if TYPE_CHECKING:
    from bigpaint.painters.base import Painter
    from bigpaint.train.objective_base import Objective
    from bigpaint.train.training_data import TrainingData

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
    from bigpaint.painters import build_painter

    run = cfg.run
    device, amp = select_device(run.device, amp=run.amp)
    if device.type == "cpu" and run.threads:
        torch.set_num_threads(run.threads)
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = _resume_state(cfg, out / STATE)
    torch.manual_seed(run.seed)
    painter = build_painter(cfg.family, cfg.model)
    if run.init_from and saved is None:
        from bigpaint.painters import load_weights

        load_weights(painter, run.init_from)  # normalizations: set from the config next
    r = _Run.start(cfg, painter, device, amp, saved)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    log = _MetricsLog(out / METRICS, r.objective.metric_names, r.saved_step if saved else None)
    r.t0 = time.perf_counter()
    prog = Progress(
        r.name,
        run.max_steps,
        unit="steps",
        enabled=run.progress,
        initial=r.objective.step,
        heartbeat=False,
    )
    logger.debug("%s: %s, autocast %s, from step %d", r.name, device, amp, r.objective.step)
    with prog:  # closed with its final line, or "stopped at" on an error
        while r.objective.step < run.max_steps:
            phase = r.objective.phase
            metrics = r.objective.train_step()
            step = r.objective.step
            prog.update(1, loss=f"{metrics['loss']:.4g}", phase=phase)
            row = {
                "step": step,
                "elapsed_s": time.perf_counter() - r.t0,
                "phase": phase,
                "lr": r.objective.lr,
                **metrics,
            }
            final = step >= run.max_steps or (
                run.max_time is not None and time.perf_counter() - r.t0 >= run.max_time
            )
            if step % run.log_every == 0 or final:
                prog.report(_metric_text(row, ("phase", "lr", *metrics)))
            if step % run.val_every == 0 or final:
                r.validate(row, report=prog.mode != "off")
                log.write(row)
            elif step % run.log_every == 0:
                log.write(row)
            if step % run.checkpoint_every == 0 or final:
                r.checkpoint()
            if final:
                break
    if r.saved_step != r.objective.step or not r.last_path.exists():
        r.checkpoint()
    return TrainResult(
        out=out,
        steps=r.objective.step,
        best_score=r.best_score,
        best=r.best_path,
        last=r.last_path,
        metrics=out / METRICS,
        elapsed=time.perf_counter() - r.t0,
        device=str(device),
        history=r.history,
    )


def _resume_state(cfg: TrainConfig, path: Path) -> dict[str, Any] | None:
    """The saved state of this run when it resumes (its config must be this one), or None."""
    if not (cfg.run.resume and path.exists()):
        return None
    saved = _load_state(path)
    if saved["config"] != _comparable(cfg):
        raise ConfigError(
            f"{path.parent} holds a different training run (its config differs); choose "
            "another run.out, delete the directory, or set run.resume: false"
        )
    return saved


@dataclass
class _Run:
    """One run's painter, data and objective, and what it has validated and saved so far.

    Attributes
    ----------
    t0 : float
        ``time.perf_counter()`` when this call's steps began (elapsed times count from it).
    best_score : float
        Lowest validation score so far (inf before the first validation).
    saved_step : int
        Step of the last resume state written or read (-1: none).
    history : list of dict
        The validation rows of this call.
    """

    cfg: TrainConfig
    painter: Painter
    data: TrainingData
    objective: Objective
    device: torch.device
    t0: float = 0.0
    best_score: float = float("inf")
    saved_step: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    last_metrics: dict[str, Any] = field(default_factory=dict)
    no_card: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        cfg: TrainConfig,
        painter: Painter,
        device: torch.device,
        amp: torch.dtype | None,
        saved: dict[str, Any] | None,
    ) -> _Run:
        """Open the data, move the painter to ``device``, build the objective and restore
        the ``saved`` state (modules, optimizers, samplers, RNG, best score) when resuming."""
        from bigpaint.train.objectives import make_objective
        from bigpaint.train.training_data import TrainingData

        data = TrainingData.open(cfg.data, painter, seed=cfg.run.seed)
        if cfg.run.channels_last and painter.ndim == 3:
            painter.to(device, memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # torch's Module.to overloads omit memory_format
        else:
            painter.to(device)
        r = cls(cfg, painter, data, make_objective(painter, cfg, data, device, amp), device)
        if saved is not None:
            r.objective.load_state_dict(saved["objective"])
            data.train.set_state(saved["sampler_train"])
            data.val.set_state(saved["sampler_val"])
            _set_rng_state(saved["rng"], device)
            r.best_score = float(saved["best_score"])
            r.saved_step = r.objective.step
        return r

    @property
    def name(self) -> str:
        return f"train {self.cfg.family}"

    @property
    def best_path(self) -> Path:
        return Path(self.cfg.run.out) / "best.painter"

    @property
    def last_path(self) -> Path:
        return Path(self.cfg.run.out) / "last.painter"

    def validate(self, row: dict[str, Any], *, report: bool) -> None:
        """Validate (adding the validation keys to ``row``), keeping the best painter."""
        obj = self.objective
        v = obj.validate()
        v["val_loss"] = obj.val_loss(self.cfg.run.val_batches)
        obj.after_validation(float(v["score"]))
        row.update({k: v[k] for k in VAL_KEYS if k in v})
        self.history.append(dict(row))
        self.last_metrics = v
        best = v["score"] < self.best_score or not self.best_path.exists()
        if best:
            self.best_score = min(self.best_score, float(v["score"]))
            self.save(self.best_path, v)
        if report:
            note = " (best so far)" if best else ""
            text = _metric_text(row, VAL_KEYS)
            logger.info("%s: validation at step %d: %s%s", self.name, row["step"], text, note)

    def save(self, path: Path, metrics: dict[str, Any]) -> None:
        """A checkpoint with its model card, when the data record what a card needs."""
        from bigpaint.painters import save_checkpoint
        from bigpaint.train.card import card_name, training_card

        extra = {
            "step": self.objective.step,
            "elapsed_s": time.perf_counter() - self.t0,
            "device": str(self.device),
            "seed": self.cfg.run.seed,
            "validation": {k: v for k, v in metrics.items() if k != "spectra"},
        }
        prov = _provenance(self.cfg, self.data, extra)
        card, why = training_card(self.painter.metadata(prov), card_name(self.cfg.run.out))
        if card is None and not self.no_card:
            self.no_card.append(why)
            logger.info("%s: checkpoints get no model card: %s", self.name, why)
        save_checkpoint(self.painter, path, provenance=prov, card=card)

    def checkpoint(self) -> None:
        """``last.painter`` and the resume state, atomically each."""
        self.saved_step = self.objective.step
        self.save(self.last_path, self.last_metrics)
        state = {
            "config": _comparable(self.cfg),
            "objective": self.objective.state_dict(),
            "sampler_train": self.data.train.state(),
            "sampler_val": self.data.val.state(),
            "rng": _rng_state(self.device),
            "best_score": self.best_score,
        }
        _save_state(Path(self.cfg.run.out) / STATE, state)
