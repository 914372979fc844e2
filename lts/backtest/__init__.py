"""Backtests: replay over files, several symbols merged in time, sweeps and reports."""
