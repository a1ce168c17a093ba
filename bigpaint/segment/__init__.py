"""Protohalo catalogues from distance maps: markers, seam-merged components, watershed."""
