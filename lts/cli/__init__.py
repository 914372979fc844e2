"""The command line, ``python -m lts.engine`` (see :mod:`lts.cli.main`): each subcommand in its
own module, whose heavy imports wait until the command runs."""
