"""Readers for external data: particle arrays (npy, Zarr) and Gadget HDF5 snapshots."""
