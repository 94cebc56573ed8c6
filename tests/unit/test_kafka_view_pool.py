"""Views that wait on Kafka run in a bounded pool of their own, a few per lab at a time, so one
learner's slow requests can't take every thread from the others. (The view here blocks on an
event standing in for a slow broker: this checks the pool, not Kafka.)"""

from __future__ import annotations

import asyncio
import threading

import pytest

from kafkalab.labs import concurrency

BOUND = 10.0  # seconds: a bound on waiting, not an expectation


@pytest.fixture
def pool(settings, monkeypatch):
    settings.LAB_KAFKA_VIEW_THREADS = 4
    settings.LAB_KAFKA_REQUESTS_PER_LAB = 2
    monkeypatch.setattr(concurrency, "_pool", None)  # made afresh with these settings
    yield
    if concurrency._pool is not None:
        concurrency._pool.shutdown(wait=False)


class SlowView:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running: dict[int, int] = {}
        self.most: dict[int, int] = {}
        self.threads: set[str] = set()

    def __call__(self, request, lab_id: int) -> int:
        with self.lock:
            self.running[lab_id] = self.running.get(lab_id, 0) + 1
            self.most[lab_id] = max(self.most.get(lab_id, 0), self.running[lab_id])
            self.threads.add(threading.current_thread().name)
        try:
            if lab_id == 1:
                assert self.release.wait(BOUND)
            return lab_id
        finally:
            with self.lock:
                self.running[lab_id] -= 1


async def test_one_labs_requests_wait_their_turn_while_another_labs_go_through(pool):
    view = SlowView()
    wrapped = concurrency.kafka_view(view)

    stuck = [asyncio.create_task(wrapped(None, lab_id=1)) for _ in range(8)]
    await asyncio.sleep(0.3)
    other = await asyncio.wait_for(wrapped(None, lab_id=2), timeout=BOUND)

    assert other == 2, "another lab's request is served while lab 1's are stuck"
    assert view.most[1] == 2, "lab 1 never holds more than its share of threads"
    view.release.set()
    assert await asyncio.wait_for(asyncio.gather(*stuck), timeout=BOUND) == [1] * 8, "its queue drains in turn"
    assert all(name.startswith("kafka-view") for name in view.threads), "in the Kafka pool, not Django's thread"
