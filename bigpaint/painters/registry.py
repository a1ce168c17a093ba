"""Painter families by name, as xarray registers its backends.

A family is a :class:`bigpaint.painters.base.Painter` subclass; the five of the papers register
on import of :mod:`bigpaint.painters`. Plugins call :func:`register_painter` with their own.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from bigpaint.config import parse_config
from bigpaint.errors import ConfigError
from bigpaint.painters.base import Painter, PainterConfig

__all__ = ["build_painter", "families", "painter_class", "register_painter"]

_REGISTRY: dict[str, type[Painter]] = {}


def register_painter(cls: type[Painter]) -> type[Painter]:
    """Register a painter family under ``cls.family`` (usable as a class decorator)."""
    name = getattr(cls, "family", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} has no 'family' name to register under")
    other = _REGISTRY.get(name)
    if other is not None and other is not cls:
        raise ValueError(f"painter family {name!r} is already registered by {other.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def families() -> list[str]:
    """Registered family names, sorted."""
    return sorted(_REGISTRY)


def painter_class(family: str) -> type[Painter]:
    """The class of a registered family; unknown names get the closest match."""
    try:
        return _REGISTRY[family]
    except KeyError:
        hint = difflib.get_close_matches(str(family), families(), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ConfigError(
            f"unknown painter family {family!r}{did}; known: {', '.join(families())}"
        ) from None


def build_painter(family: str, config: PainterConfig | Mapping[str, Any] | None = None) -> Painter:
    """Construct a painter of ``family`` from its architecture config (model or mapping).

    Unknown or invalid keys raise a one-line :class:`ConfigError`.
    """
    cls = painter_class(family)
    if config is None or isinstance(config, Mapping):
        config = parse_config(cls.Config, config or {}, f"{family} model")
    elif not isinstance(config, cls.Config):
        raise ConfigError(f"{family} needs a {cls.Config.__name__}, got {type(config).__name__}")
    return cls(config)
