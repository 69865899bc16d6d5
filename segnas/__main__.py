"""``python -m segnas`` is the ``segnas`` command."""

import sys

from .cli import main

sys.exit(main())
