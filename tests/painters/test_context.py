"""Receptive fields of networks: the chain formula and the structural probe agree."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bigpaint.context import probe_context, receptive_field, receptive_field_context


def test_receptive_field_of_chains():
    assert receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([(3, 2), (3, 1)]) == 1 + 2 + 2 * 2
    assert receptive_field([(3, 1, 2)]) == 5
    assert receptive_field([(1, 1)] * 4) == 1
    assert receptive_field_context([(5, 1), (5, 1), (1, 1)]) == 4  # the halo painter's chain
    with pytest.raises(ValueError, match="even"):
        receptive_field_context([(2, 1)])
    with pytest.raises(ValueError, match=">= 1"):
        receptive_field([(0, 1)])


def test_probe_matches_chain_formula_for_padded_stacks():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv1d(1, 2, 5, padding=2), nn.ReLU(), nn.Conv1d(2, 1, 3, padding=2, dilation=2)
    )
    assert probe_context(net, ndim=1, in_channels=1) == receptive_field_context([(5, 1), (3, 1, 2)])
    net2 = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(3, 1, 7, padding=3)
    )
    assert probe_context(net2, ndim=2, in_channels=1) == 4


class _PoolUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool1d(2)
        self.conv = nn.Conv1d(1, 1, 3, padding=1)

    def forward(self, x):
        return nn.functional.interpolate(self.conv(self.pool(x)), scale_factor=2)


def test_probe_covers_every_pooling_phase():
    """pool 2 -> conv 3 at half resolution -> upsample: an aligned pair of outputs sees the
    pair's own pooling window plus one coarse voxel (2 fine) on each side."""
    assert probe_context(_PoolUp(), ndim=1, in_channels=1, alignment=2) == 2


def test_probe_refuses_networks_that_change_size():
    with pytest.raises(ValueError, match="same-size"):
        probe_context(nn.Conv1d(1, 1, 3), ndim=1, in_channels=1)


def test_probe_does_not_touch_the_module():
    net = nn.Sequential(nn.Conv1d(1, 1, 3, padding=1), nn.MaxPool1d(1))
    before = [p.clone() for p in net.parameters()]
    probe_context(net, ndim=1, in_channels=1)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert isinstance(net[1], nn.MaxPool1d)
