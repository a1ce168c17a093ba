"""Pipeline configs shipped inside the package (read with :mod:`importlib.resources`)."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

__all__ = ["default_config", "default_config_text"]


def default_config_text(name: str = "quickstart") -> str:
    """The YAML text of the embedded pipeline ``name`` (``quickstart``)."""
    from bigpaint.errors import ConfigError

    res = resources.files(__name__).joinpath(f"{name}.yaml")
    if not res.is_file():
        raise ConfigError(f"no embedded pipeline named {name!r}; the package ships 'quickstart'")
    return res.read_text()


def default_config(name: str = "quickstart") -> dict[str, Any]:
    """The embedded pipeline ``name`` as a mapping (validate with ``parse_config``)."""
    return yaml.safe_load(default_config_text(name))
