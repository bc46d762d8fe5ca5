"""A rate-limited work queue with client-go semantics, in simulated time.

Controllers built on client-go (the resourceclaim controller, the DRA driver
library) put object keys into such a queue and let N workers take them out.
The rules that shape their timing are kept exactly:

* a key is in the queue at most once (adding it again is a no-op);
* a key is never processed by two workers at once: adding a key that is being
  processed marks it dirty, and it is queued again when the worker calls `done`;
* `add_rate_limited` waits max(per-key backoff 5 ms * 2^failures capped at
  1000 s, the global 10 qps / burst 100 bucket) before adding;
* `add_after` adds after a delay; of several pending delays for one key the
  earliest wins.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

from sim.cluster.ratelimit import ItemExponentialBackoff, TokenBucket


def log_retry(
    log: logging.Logger, level: int, now: float, key: str, retries: int, error: Exception
) -> None:
    """Log a failed sync whose key goes back to the queue (`retries` before this one)."""
    log.log(level, "t=%.6f %s failed (retry %d with backoff): %s", now, key, retries + 1, error)


class WorkQueue:
    """client-go's rate-limiting work queue for one controller."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        *,
        base_delay_s: float = 0.005,
        max_delay_s: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
    ) -> None:
        self.env = env
        self.name = name
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._getters: deque[simpy.Event] = deque()
        self._ready_at: dict[str, float] = {}
        self._backoff = ItemExponentialBackoff(base_delay_s, max_delay_s)
        self._bucket = TokenBucket(qps, burst)

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        """Queue `key` unless it is already queued; defer it if a worker is processing it."""
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._hand_out()

    def get(self) -> simpy.Event:
        """Return an event that fires with the next key once one is available."""
        event = self.env.event()
        self._getters.append(event)
        self._hand_out()
        return event

    def done(self, key: str) -> None:
        """Mark `key` as processed; queue it again if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._hand_out()

    def work(
        self,
        sync: Callable[[str], Generator[simpy.Event, Any, None]],
        retry_on: tuple[type[Exception], ...],
        on_retry: Callable[[str, Exception, int], None],
    ) -> Generator[simpy.Event, Any, None]:
        """Run one worker forever: take a key, sync it, and hand it back to the queue.

        A sync that raises one of `retry_on` is reported to `on_retry` with the
        key, the error and the retries so far. The key is then added again after
        its backoff. A successful sync resets the key's backoff, as client-go
        workers do with `AddRateLimited` and `Forget`. Any other error ends the
        worker.
        """
        while True:
            key = yield self.get()
            try:
                yield from sync(key)
            except retry_on as error:
                on_retry(key, error, self.num_requeues(key))
                self.add_rate_limited(key)
            else:
                self.forget(key)
            finally:
                self.done(key)

    def add_after(self, key: str, delay_s: float) -> None:
        """Add `key` after `delay_s` seconds (at once when the delay is not positive)."""
        if delay_s <= 0:
            self.add(key)
            return
        ready_at = float(self.env.now) + delay_s
        pending = self._ready_at.get(key)
        if pending is not None and pending <= ready_at:
            return
        self._ready_at[key] = ready_at
        timer = self.env.timeout(delay_s)
        timer.callbacks.append(lambda _event: self._add_when_ready(key, ready_at))

    def add_rate_limited(self, key: str) -> None:
        """Add `key` after its backoff: the larger of the per-key and the global delays."""
        delay = max(self._backoff.when(key), self._bucket.reserve(float(self.env.now)))
        self.add_after(key, delay)

    def forget(self, key: str) -> None:
        """Reset the per-key backoff of `key` (after a successful sync)."""
        self._backoff.forget(key)

    def num_requeues(self, key: str) -> int:
        """Return how many times `key` was re-added with backoff since the last `forget`."""
        return self._backoff.failures(key)

    def _add_when_ready(self, key: str, ready_at: float) -> None:
        # A later add_after with an earlier time replaced this timer's entry.
        if self._ready_at.get(key) != ready_at:
            return
        del self._ready_at[key]
        self.add(key)

    def _hand_out(self) -> None:
        while self._getters and self._queue:
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            self._getters.popleft().succeed(key)
