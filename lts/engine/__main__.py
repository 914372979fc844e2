"""``python -m lts.engine``: see :mod:`lts.cli.main`."""

import sys

from lts.cli.main import main

sys.exit(main())
