"""Keeping the garbage collector off the hot path.

After start-up (the data loaded, every portfolio recovered) nearly every object alive stays alive
for the whole run. :func:`freeze_startup_heap` collects once and moves them to the permanent
generation, so a full collection later scans only what trading created since: measured here, a
full collection fell from about 160 ms (285k tracked objects, 500 portfolios) to 14 ms, and a
1M-bar replay ran 15-20% faster.
"""

import gc


def freeze_startup_heap() -> None:
    gc.collect()
    gc.freeze()


def unfreeze_heap() -> None:
    gc.unfreeze()
