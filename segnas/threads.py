"""Torch's intra-op thread count for one block: set on entry, restored on exit.

Commands run in-process (tests, the demo, ``segnas compare --executor inline``)
share one interpreter, so a ``--threads`` that is set and never restored would
change every later command's speed and, for seeded runs, results.
"""

from __future__ import annotations

from typing import Any

import torch


class torch_threads:  # noqa: N801 - used like a function: ``with torch_threads(n):``
    """``threads`` torch threads inside the block (None or 0: left as it is), the old count after it."""

    def __init__(self, threads: int | None) -> None:
        self.threads, self.old = threads, torch.get_num_threads()

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.old)


__all__ = ["torch_threads"]
