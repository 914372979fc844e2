"""Keeping the garbage collector off the hot path (the live engine after its start-up, a replay).

After start-up (the data loaded, every portfolio recovered) nearly every object alive stays alive
for the whole run. :func:`freeze_startup_heap` collects once and moves them to the permanent
generation, so a full collection later scans only what trading created since: measured here, a
full collection fell from about 160 ms (285k tracked objects, 500 portfolios) to 14 ms, and a
1M-bar replay ran 15-20% faster.
"""

import gc

#: After the freeze: the young generation is collected every 10,000 allocations (not 700) and
#: the full collection ten times less often. A trading loop allocates fast (bars, orders,
#: events, journal records) and keeps little; measured at 2,000 portfolios x 4 assets (this
#: machine, loaded), loop lag p99 678 -> 272 ms, no full collection in 30 s (each took 400 ms).
LIVE_THRESHOLDS = (10_000, 20, 100)
_DEFAULT_THRESHOLDS = gc.get_threshold()  # the interpreter's, restored by unfreeze_heap


def freeze_startup_heap() -> None:
    """Collect once, move what is alive to the permanent generation, collect rarer from now."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*LIVE_THRESHOLDS)


def unfreeze_heap() -> None:
    gc.unfreeze()
    gc.set_threshold(*_DEFAULT_THRESHOLDS)

