"""Every Python process of a test run is guarded: nothing it connects to may leave the machine
(see :mod:`lts_netguard`). This directory is first on ``PYTHONPATH`` while the suite runs."""

import lts_netguard

lts_netguard.install()
