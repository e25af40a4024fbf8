"""Pause Python's cyclic garbage collector for the length of one import.

Why: an import parses every image before it writes any (nothing is stored unless all series pass), so some
hundred thousand container objects (datasets, elements, tags) are alive at once until it ends, and they are
freed by reference counting, not by the collector. Automatic collections during the import only scan them
again and again and, as they survive, set off full collections of the whole process (0.15-0.25 s in a Django
worker, measured; docs/PERFORMANCE.md). The pause is bounded by the upload limits and ends with the import;
the collector runs as usual afterwards.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable automatic collection inside the block (nested use is fine); restore the previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
