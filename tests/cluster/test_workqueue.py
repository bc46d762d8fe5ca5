"""Tests of the work queue's worker loop (`WorkQueue.work`) in simulated time."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import simpy

from sim.cluster.workqueue import WorkQueue


class Flaky(Exception):
    """An error the worker retries."""


def test_failed_sync_is_retried_after_backoff() -> None:
    env = simpy.Environment()
    queue = WorkQueue(env, "test")
    synced: list[tuple[str, float]] = []
    retries: list[tuple[str, str, int]] = []

    def sync(key: str) -> Generator[simpy.Event, Any, None]:
        synced.append((key, env.now))
        yield env.timeout(0.001)
        if len(synced) < 3:
            raise Flaky(f"attempt {len(synced)}")

    env.process(
        queue.work(sync, (Flaky,), lambda key, error, n: retries.append((key, str(error), n)))
    )
    queue.add("ns/a")
    env.run(until=1.0)

    # Backoff 5 ms, then 10 ms, each counted from the failure at the end of a 1 ms sync.
    assert [key for key, _ in synced] == ["ns/a"] * 3
    assert [round(at, 6) for _, at in synced] == [0.0, 0.006, 0.017]
    assert retries == [("ns/a", "attempt 1", 0), ("ns/a", "attempt 2", 1)]
    assert queue.num_requeues("ns/a") == 0


def test_unexpected_error_stops_the_worker() -> None:
    env = simpy.Environment()
    queue = WorkQueue(env, "test")

    def sync(key: str) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(0.001)
        raise ValueError(key)

    env.process(queue.work(sync, (Flaky,), lambda *_: None))
    queue.add("ns/a")

    with pytest.raises(ValueError, match="ns/a"):
        env.run(until=1.0)
