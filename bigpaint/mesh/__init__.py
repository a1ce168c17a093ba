"""Meshes: particle deposition and readout kernels (numba), Fourier windows, distributed FFT, k-grids."""
