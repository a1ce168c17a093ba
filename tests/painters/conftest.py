"""Small painter configs for fast tests, and one torch thread per test (shared CPUs)."""

from ._small import SMALL, _one_thread, small

__all__ = ["SMALL", "_one_thread", "small"]
