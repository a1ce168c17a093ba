"""Every ``configs/train-<family>.yaml`` validates: keys, architecture, objective, normalizations."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigpaint.config import load_config, parse_config
from bigpaint.painters import families, painter_class
from bigpaint.painters.base import parse_norms
from bigpaint.train import TrainConfig
from bigpaint.train.objectives import OBJECTIVES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_one_config_per_family():
    assert sorted(p.stem.removeprefix("train-") for p in CONFIGS.glob("train-*.yaml")) == families()


@pytest.mark.parametrize("family", families())
def test_config_validates(family):
    cfg = load_config(TrainConfig, CONFIGS / f"train-{family}.yaml")
    assert cfg.family == family
    cls = painter_class(family)
    model = parse_config(cls.Config, cfg.model, f"{family} model")
    parse_config(OBJECTIVES[family].Settings, cfg.objective, f"{family} objective")
    for norms, channels in (
        (cfg.data.input_norm, model.in_channels),
        (cfg.data.output_norm, model.out_channels),
    ):
        if norms is not None:
            resolved = [{k: (1.0 if v == "auto" else v) for k, v in n.items()} for n in norms]
            parse_norms(resolved, channels, family)
    if family != "protohalo-unet":  # the paper-size U-Net is built in test_families
        painter = cls(model)
        assert painter.context >= 0 and painter.parameter_count() > 0
