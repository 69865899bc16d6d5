"""Search spaces by name."""

from __future__ import annotations

from ..errors import GenotypeError
from .base import SearchSpace
from .autodeeplab import AutoDeepLabSpace
from .dcnas import DCNASSpace
from .dots import DotsSpace
from .fasterseg import FasterSegSpace
from .nekrasov import NekrasovSpace

SPACES: dict[str, SearchSpace] = {space.name: space
                                  for space in (FasterSegSpace(), AutoDeepLabSpace(), DCNASSpace(), NekrasovSpace(), DotsSpace())}


def get_space(name: str, source: str = "space") -> SearchSpace:
    """The registered space ``name``; an unknown name lists the known ones."""
    try:
        return SPACES[name]
    except KeyError:
        raise GenotypeError(f"{source}: unknown search space {name!r}; known: "
                            f"{', '.join(sorted(SPACES))}") from None


__all__ = ["SPACES", "SearchSpace", "get_space", "AutoDeepLabSpace", "DCNASSpace", "DotsSpace", "FasterSegSpace",
           "NekrasovSpace"]
