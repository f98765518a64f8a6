"""Files that a crash or a power cut leaves whole: the old version or the new one, never half.

The key files, the server's witness copy of the latest checkpoint and its verification reports,
and a station's own files are all replaced this way: a temporary file beside the target, written
whole and flushed to disk, renamed over it, and the folder flushed too, so that the rename itself
survives a power cut (without that, a file system may bring back the old name after a reboot).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old file or the new one, both whole.

    The file has ``mode`` from its creation on (0o600 for a secret: it is never readable by
    others, not even for a moment). The temporary file's name is unique to the call, so
    processes replacing the same file at once never write into each other's.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0o600
    try:
        try:
            if mode != 0o600:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
