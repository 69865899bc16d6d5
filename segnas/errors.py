"""User-facing errors: one clear line naming the file or field and the fix.

The CLI prints ``str(error)`` of any :class:`SegnasError` and exits non-zero
without a traceback; everything else is a bug and keeps its traceback.
"""

import re


class SegnasError(Exception):
    """Base class for problems caused by the user's input, not by segnas."""


class DataError(SegnasError):
    """A dataset folder, image or mask is missing, corrupt or inconsistent."""


class GenotypeError(SegnasError):
    """A genotype file is malformed, foreign or fails its space's validation."""


class ConfigError(SegnasError):
    """A configuration value or command-line option is invalid."""


class CheckpointError(SegnasError):
    """A checkpoint is missing, corrupt or does not match the network."""


class OutputError(SegnasError):
    """A file could not be written (disk full, read-only, quota); what was there before is intact."""


def one_line(error: BaseException) -> str:
    """``Type: first line of the message``, for logs and result records (terminal colour codes removed)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    first = text.splitlines()[0] if text else ""
    line = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return line if len(line) <= 300 else line[:297] + "..."
