"""Where a deposit's bucket files (and an interlaced deposit's intermediate grids) go.

A Field job spills into one directory of its own, named after its job token
(:func:`job_spill_dir`), which bigpaint creates and marks as its own
(:func:`bigpaint.outputs.owned_dir`), so only that directory is ever deleted, never a
user's ``--spill-dir``. Inside it, every routing pass writes its buckets into a fresh
subdirectory (:class:`SpillArea`) that is removed when the pass is done, whether it
succeeded or not.

Bucket files must be visible to every worker: the default next to a local output shares
its file system; an object-store output spills to the system temporary directory, so a
cluster writing to one should name a shared ``spill_dir``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

__all__ = ["SpillArea", "job_spill_dir"]


def job_spill_dir(url: str, job: str, parent: str | None = None) -> str:
    """The spill directory of the deposit job ``job`` (a job token) writing ``url``.

    Inside ``parent`` if given; else next to a local output (hidden, named after it); else,
    for an object-store output, in the system temporary directory.
    """
    if parent is not None:
        return os.path.join(parent, f"bigpaint-deposit-{job[:12]}")
    if "://" in str(url):
        return os.path.join(tempfile.gettempdir(), f"bigpaint-deposit-{job[:12]}")
    absurl = os.path.abspath(url)
    return os.path.join(os.path.dirname(absurl), f".{os.path.basename(absurl)}.deposit-{job[:12]}")


class SpillArea:
    """A fresh bucket directory (inside ``parent`` if given), removed on exit."""

    def __init__(self, parent: str | None) -> None:
        self.parent = parent
        self.path = ""

    def __enter__(self) -> str:
        if self.parent is None:
            self.path = tempfile.mkdtemp(prefix="bigpaint-deposit-")
        else:
            os.makedirs(self.parent, exist_ok=True)
            self.path = tempfile.mkdtemp(prefix="buckets-", dir=self.parent)
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
