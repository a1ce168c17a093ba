"""Initial conditions: cosmology and growth, linear P(k), seeded Gaussian fields, LPT, configs."""

from bigpaint.ics.config import IcsConfig, LptConfig, run_ics, run_lpt
from bigpaint.ics.cosmology import Background, CosmologyConfig, background
from bigpaint.ics.grf import gaussian_field, gaussian_field_array, linear_modes
from bigpaint.ics.lpt import (
    lpt_density,
    lpt_displacement_array,
    lpt_particles_array,
    second_order_source,
    second_order_source_array,
)
from bigpaint.ics.lpt_plan import LPTResult
from bigpaint.ics.noise import white_noise, white_noise_array
from bigpaint.ics.power import LinearPower, PowerConfig, linear_power, read_power_table, sigma_r

__all__ = [
    "Background",
    "CosmologyConfig",
    "IcsConfig",
    "LPTResult",
    "LinearPower",
    "LptConfig",
    "PowerConfig",
    "background",
    "gaussian_field",
    "gaussian_field_array",
    "linear_modes",
    "linear_power",
    "lpt_density",
    "lpt_displacement_array",
    "lpt_particles_array",
    "read_power_table",
    "run_ics",
    "run_lpt",
    "second_order_source",
    "second_order_source_array",
    "sigma_r",
    "white_noise",
    "white_noise_array",
]
