"""Initial conditions: white noise (seed-only, chunk-independent), later Gaussian fields and LPT."""

from bigpaint.ics.noise import white_noise, white_noise_array

__all__ = ["white_noise", "white_noise_array"]
