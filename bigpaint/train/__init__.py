"""Training painters on bigpaint's own boxes: patch sampler, cube symmetries, losses, loops.

:func:`train` runs a :class:`TrainConfig` (``bigpaint train CONFIG``); the pieces are usable
alone: :class:`PatchSampler` (periodic crops of Fields split by region), :func:`symmetries`
(the 48 cube / 8 square symmetries), the losses of :mod:`bigpaint.train.losses` (gradient
penalty, selective L1, DSSIM/MSLE, feature loss) and :func:`validate` (validation by the
power spectrum of the painted validation cube).
"""

from bigpaint.train.config import TrainConfig
from bigpaint.train.loop import TrainResult, select_device, train
from bigpaint.train.losses import gradient_penalty
from bigpaint.train.sampler import PatchSampler, Region, inverse_frequency_weights
from bigpaint.train.symmetry import Symmetry, random_symmetry, symmetries
from bigpaint.train.training_data import TrainingData
from bigpaint.train.validate import validate

__all__ = [
    "PatchSampler",
    "Region",
    "Symmetry",
    "TrainConfig",
    "TrainResult",
    "TrainingData",
    "gradient_penalty",
    "inverse_frequency_weights",
    "random_symmetry",
    "select_device",
    "symmetries",
    "train",
    "validate",
]
