"""The installed bigpaint's version, recorded in every Field, checkpoint and card it writes.

It lives in a module of its own, below everything else, so that writers low in the package
(:mod:`bigpaint.field`, the painters' checkpoints) can stamp it without importing the
package's top level, which imports them.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("bigpaint")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
