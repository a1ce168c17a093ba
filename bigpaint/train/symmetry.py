"""The symmetries of the cube (48, the hyperoctahedral group B3) and of the square (8, D4).

A symmetry permutes the spatial axes and flips some of them: output axis ``i`` is input axis
``perm[i]``, reversed when ``flips[i]``. Applied to an input patch and its target patch (both
centred on the same region, as the sampler cuts them) with the same element, the pair stays
aligned: a valid-convolution painter's target is the centre of its input, and centring
commutes with every axis permutation and reversal. Scalar fields only (a vector field would
also need its components permuted and negated).

:func:`symmetries` lists the group (identity first); :meth:`Symmetry.compose` and
:meth:`Symmetry.inverse` make it a group in code; :meth:`Symmetry.matrix` is the signed
permutation matrix acting on index vectors.

Why hand-written: numpy/torch give transpose and flip; enumerating the group with
composition and inverses is ten lines bigpaint owns.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Symmetry", "random_symmetry", "symmetries"]


@dataclass(frozen=True)
class Symmetry:
    """One element: ``perm`` (a permutation of the spatial axes) and ``flips`` (per output axis)."""

    perm: tuple[int, ...]
    flips: tuple[bool, ...]

    @property
    def ndim(self) -> int:
        return len(self.perm)

    def apply(self, x: Any) -> Any:
        """Apply to the last ``ndim`` axes of a numpy array or torch tensor (leading axes kept)."""
        lead = x.ndim - self.ndim
        if lead < 0:
            raise ValueError(f"a {self.ndim}-D symmetry needs >= {self.ndim} axes, got {x.ndim}")
        order = list(range(lead)) + [lead + p for p in self.perm]
        axes = tuple(lead + i for i, f in enumerate(self.flips) if f)
        if isinstance(x, torch.Tensor):
            y = x.permute(order)
            return y.flip(axes) if axes else y
        a = np.transpose(x, order)
        return np.flip(a, axes) if axes else a

    def compose(self, other: Symmetry) -> Symmetry:
        """The element ``other . self``: apply ``self`` first, then ``other``."""
        if other.ndim != self.ndim:
            raise ValueError("cannot compose symmetries of different dimension")
        perm = tuple(self.perm[j] for j in other.perm)
        flips = tuple(self.flips[j] != f for j, f in zip(other.perm, other.flips, strict=True))
        return Symmetry(perm, flips)

    def inverse(self) -> Symmetry:
        """The element undoing this one."""
        inv = [0] * self.ndim
        for i, p in enumerate(self.perm):
            inv[p] = i
        return Symmetry(tuple(inv), tuple(self.flips[inv[j]] for j in range(self.ndim)))

    def matrix(self) -> np.ndarray:
        """Signed permutation matrix ``M``: output index ``j = M i + offset`` for input index ``i``."""
        m = np.zeros((self.ndim, self.ndim), dtype=int)
        for i, (p, f) in enumerate(zip(self.perm, self.flips, strict=True)):
            m[i, p] = -1 if f else 1
        return m


@functools.cache
def symmetries(ndim: int = 3) -> tuple[Symmetry, ...]:
    """All ``ndim! 2^ndim`` symmetries of the ``ndim``-cube (48 for 3-D, 8 for 2-D), identity first."""
    if ndim < 1:
        raise ValueError(f"ndim must be >= 1, got {ndim}")
    return tuple(
        Symmetry(perm, flips)
        for perm in itertools.permutations(range(ndim))
        for flips in itertools.product((False, True), repeat=ndim)
    )


def random_symmetry(rng: np.random.Generator, ndim: int = 3) -> Symmetry:
    """A uniformly drawn element of the group."""
    group = symmetries(ndim)
    return group[int(rng.integers(len(group)))]
