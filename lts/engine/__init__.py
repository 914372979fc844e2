"""The runtime: engine lifecycle, portfolio runners, feeds, clocks, risk, order manager, ledger,
supervision, replay and the command line (``python -m lts.engine``)."""
