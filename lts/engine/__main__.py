"""``python -m lts.engine``: see :mod:`lts.cli.main`."""

from lts.cli.main import run_as_process

run_as_process()
