"""``python -m lts.engine``: see :mod:`lts.engine.cli`."""

import sys

from lts.engine.cli import main

sys.exit(main())
