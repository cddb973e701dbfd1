"""``pools.Lanes``: batches in order, at most ``count`` in flight per process, no waiting on
a finished batch."""

from __future__ import annotations

import random
import threading
import time

from sam2unext.geo.running.pools import Lanes


class InFlight:
    """``fn`` for ``Lanes.ordered`` that records how many calls run at once."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.now, self.most = delay, 0, 0
        self.lock = threading.Lock()

    def __call__(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.delay * random.random())
        with self.lock:
            self.now -= 1
        return item * item


def test_results_come_in_order_and_two_chunk_tasks_share_the_bound():
    lanes = Lanes(3)
    fn = InFlight(delay=0.01)
    results: dict[str, list[int]] = {}

    def chunk_task(name: str, items: range) -> None:
        results[name] = list(lanes.ordered(fn, items))

    try:
        tasks = [threading.Thread(target=chunk_task, args=(n, range(40))) for n in ("a", "b")]
        for t in tasks:
            t.start()
        for t in tasks:
            t.join(60)
    finally:
        lanes.close()
    assert results == {"a": [i * i for i in range(40)], "b": [i * i for i in range(40)]}
    assert 1 < fn.most <= 3


def test_a_finished_batch_frees_its_slot_at_once():
    """Before, a chunk task holding every slot polled for 50 ms before taking back its own finished
    batch: 60 instant batches took about 3 s on two lanes."""
    lanes = Lanes(2)
    try:
        start = time.perf_counter()
        assert list(lanes.ordered(InFlight(), range(60))) == [i * i for i in range(60)]
        seconds = time.perf_counter() - start
    finally:
        lanes.close()
    assert seconds < 1.0, f"60 instant batches took {seconds:.2f} s"
