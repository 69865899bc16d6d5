"""segnas: neural architecture search for semantic segmentation.

The entry points::

    import segnas
    segnas.zoo.list()
    g = segnas.zoo.get("fasterseg")
    net = segnas.build(g, num_classes=19)
    segnas.profile(net, input_size=(1, 3, 1024, 2048))
"""

from __future__ import annotations

from torch import nn

from . import methods, zoo
from .errors import SegnasError
from .genotype import Genotype, load, save
from .profile import profile

__version__ = "0.1.0"


def build(genotype: Genotype, num_classes: int, aux: bool = True) -> nn.Module:
    """Build the child network of ``genotype`` with ``num_classes`` outputs.

    ``aux`` adds the space's training-only auxiliary heads (run only with
    ``net(x, aux=True)``); inference never uses them.
    """
    from .spaces import get_space

    return get_space(genotype.space).build(genotype, num_classes, aux=aux)


__all__ = ["Genotype", "SegnasError", "build", "load", "methods", "profile", "save", "zoo", "__version__"]
