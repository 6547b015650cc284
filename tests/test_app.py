from __future__ import annotations

import gc

from proxy.app import GC_GEN0_THRESHOLD, settle_heap


def test_settle_heap_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    startup = [{"long": "lived"}]  # reachable, so the freeze keeps it
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
        assert not any(o is startup for o in gc.get_objects())  # out of the collector's walk
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
