"""Atomic file writing: a crash, a kill or a full disk never leaves half a file behind.

Data goes to a temporary file in the target folder, is flushed to disk, gets
the usual permissions (``0666 & ~umask``, not mkstemp's private 0600) and is
renamed over the target in one step. A write that fails (disk full,
read-only, quota; also the RuntimeError ``torch.save`` raises on a short
write, which is not an OSError) removes the temporary file, leaves the target
as it was and becomes one :class:`~segnas.errors.OutputError` line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import OutputError


TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], binary: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) or (isinstance(e, RuntimeError) and is_short_write(e)):
            raise write_failed(path, e) from None
        raise
    return path


def is_short_write(error: RuntimeError) -> bool:
    """torch's zip writer reports a failed or short write as a RuntimeError."""
    text = str(error)
    return "PytorchStreamWriter" in text or "file write failed" in text or "unexpected pos" in text


def write_failed(path: Path, error: BaseException) -> OutputError:
    """One line: which file, why, and that what was there before is intact."""
    reason = (error.strerror if isinstance(error, OSError) and error.strerror
              else "short write: the disk is full or a quota was reached")
    return OutputError(f"{path}: cannot write ({reason}); nothing was replaced, the file as it was before is "
                       "intact: free space or fix the permissions, then run again (a run continues with --resume)")


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append to a log file; a failed write is one OutputError line (a half line is skipped by its readers)."""
    try:
        with Path(path).open("a") as f:
            f.write(text)
    except OSError as e:
        raise write_failed(Path(path), e) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def remove_partial_writes(folder: str | os.PathLike) -> int:
    """Delete the temporary files (``.NAME.XXXX.tmp``) that writes killed before their rename left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
