"""Plugins: six kinds (aaa, core, pipeline, strategy, portfolio, broker), each a small typed
protocol in its sub-package, all sharing the seed's contract in :mod:`lts.plugins.base` and found
by :mod:`lts.plugins.registry` through entry-point groups ``lts.plugins.<kind>``.
"""
