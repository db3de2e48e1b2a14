"""Crash-safe file writing: temp file in the target directory, fsync, rename.

A reader of the target path sees either the old file, or the complete new one, never a partial
file: ``os.replace`` is atomic on POSIX within one file system, and the temp file lives in the
same directory to guarantee that. The directory is fsynced after the rename so that the new name
survives a power cut too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_dir", "TMP_PREFIX"]

#: Every temp file diqkd creates starts with this prefix, so that a crash leftover is recognisable
#: (and ignorable) in an output directory; it never has the name of a real output.
TMP_PREFIX = ".diqkd-tmp-"


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory entry to disk (best effort on platforms that cannot open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success, fsync it and rename it onto ``path``.

    For writers that need a file name (h5py, numpy). The temp file is created with ``mode``
    from the start (no window in which key material is world-readable) and removed on error.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + target.name + ".", dir=directory)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, mode)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
        fsync_dir(directory)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # a failed write(2)/fsync(2) (disk full, I/O error) carries no file name: name the
            # file we were writing, so that the user's message says where (cli/main.py)
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` atomically with permission bits ``mode``."""
    with atomic_path(path, mode) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = 0o644) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)
